// The page script: signs in, calls the public JSON API with the Bearer token, fills the server-rendered
// page. Text only ever goes in through textContent (the CSP enforces Trusted Types: no HTML strings).
'use strict';

(() => {
  const TOKEN_KEY = '@auth/appToken'; // where Mana's web apps keep the mana-auth access token
  const SIGNED_OUT_KEY = 'mana-credits:signed-out';
  const body = document.body;
  const page = body.dataset.page;
  const mode = body.dataset.auth; // "dev": sign in as anyone; "sso": mana-auth session
  const authUrl = body.dataset.authUrl;
  const T = JSON.parse(document.getElementById('i18n').textContent);
  const locale = document.documentElement.lang === 'en' ? 'en-GB' : 'de-DE';
  const number = new Intl.NumberFormat(locale);
  const euro = new Intl.NumberFormat(locale, { style: 'currency', currency: 'EUR' });
  const day = new Intl.DateTimeFormat(locale, { dateStyle: 'medium' });
  const shortDay = new Intl.DateTimeFormat(locale, { day: 'numeric', month: 'numeric', timeZone: 'UTC' });
  const moment = new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'short' });
  const $ = (selector, root = document) => root.querySelector(selector);

  const fmt = (key, values = {}) =>
    (T[key] || key).replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
  const date = (iso) => (iso ? day.format(new Date(iso)) : '');
  // The apps the service books its own rows to, by name; any other appId as it is.
  const appName = (appId) => T[`app_${appId}`] || appId;

  // ---- token ----

  function claims(token) {
    try {
      const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      return JSON.parse(atob(part));
    } catch {
      return null;
    }
  }

  function storedToken() {
    const token = localStorage.getItem(TOKEN_KEY);
    const payload = token && claims(token);
    if (!payload || typeof payload.exp !== 'number' || payload.exp * 1000 < Date.now() + 15000) return null;
    return token;
  }

  // mana-auth turns its session cookie (shared by the Mana apps) into a short-lived access token.
  async function ssoToken() {
    if (mode !== 'sso' || !authUrl) return null;
    try {
      const response = await fetch(`${authUrl}/api/v1/auth/session-to-token`, {
        method: 'POST',
        credentials: 'include',
        headers: { 'Content-Type': 'application/json' },
      });
      if (!response.ok) return null;
      const data = await response.json();
      if (typeof data.accessToken !== 'string') return null;
      localStorage.setItem(TOKEN_KEY, data.accessToken);
      sessionStorage.removeItem(SIGNED_OUT_KEY);
      return data.accessToken;
    } catch {
      return null;
    }
  }

  async function currentToken() {
    return storedToken() || (sessionStorage.getItem(SIGNED_OUT_KEY) ? null : await ssoToken());
  }

  function toSignIn() {
    location.assign(`/app/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`);
    return new Promise(() => {}); // the page is going away
  }

  function safeNext(value) {
    return value && value.startsWith('/') && !value.startsWith('//') && !value.startsWith('/\\') ? value : '/app';
  }

  // ---- API ----

  async function api(method, path, data, { auth = true } = {}) {
    const headers = { Accept: 'application/json' };
    if (data !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET') headers['Idempotency-Key'] = crypto.randomUUID();
    if (auth) {
      const token = await currentToken();
      if (!token) return toSignIn();
      headers.Authorization = `Bearer ${token}`;
    }
    let response;
    try {
      response = await fetch(path, { method, headers, body: data === undefined ? undefined : JSON.stringify(data) });
    } catch {
      return { ok: false, status: 0, body: null, headers: new Headers() };
    }
    if (response.status === 401 && auth) {
      localStorage.removeItem(TOKEN_KEY);
      return toSignIn();
    }
    let json = null;
    try {
      json = await response.json();
    } catch {
      json = null;
    }
    return { ok: response.ok, status: response.status, body: json, headers: response.headers };
  }

  function errorText(result) {
    const error = result.body || {};
    if (result.status === 0) return T.error_network;
    if (error.code === 'insufficient_credits' && error.details) return fmt('insufficient_credits', error.details);
    if (error.code === 'rate_limited') return fmt('rate_limited', { seconds: (error.details || {}).retryAfter || 60 });
    if (error.code === 'sync_gifted') return T.sync_gifted_error;
    if (error.code && T[error.code]) return T[error.code];
    return T.error_generic;
  }

  // ---- page helpers ----

  function fill(templateId, values) {
    const node = document.getElementById(templateId).content.firstElementChild.cloneNode(true);
    for (const [name, value] of Object.entries(values)) {
      const slot = node.querySelector(`[data-f="${name}"]`);
      if (!slot) continue;
      if (value instanceof Node) slot.replaceChildren(value);
      else slot.textContent = value ?? '';
    }
    return node;
  }

  function say(element, text) {
    element.textContent = text || '';
    element.hidden = !text;
  }

  // Runs `work` with the button showing that it is working; the button cannot be pressed twice.
  async function busy(button, work) {
    const label = button.textContent;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    button.textContent = T.working;
    try {
      return await work();
    } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
      button.textContent = label;
    }
  }

  function clearErrors(form) {
    for (const element of form.querySelectorAll('.field-error')) say(element, '');
    for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
    const formError = $('.form-error', form);
    if (formError) formError.textContent = '';
  }

  function fieldError(form, name, text) {
    const input = form.elements.namedItem(name);
    const slot = input && document.getElementById(`${input.id}-error`);
    if (!slot) return false;
    say(slot, text);
    input.setAttribute('aria-invalid', 'true');
    return true;
  }

  // API errors go next to the field they are about (validation details name it; anything else goes to
  // the form's main field), else under the form; focus moves to the first field in error.
  function showErrors(form, result) {
    clearErrors(form);
    const fields = ((result.body || {}).details || {}).fields || [];
    let placed = false;
    for (const item of fields) {
      const name = String(item.field || '').split('.').pop();
      placed = fieldError(form, name, T[`err_${name}`] || T.error_generic) || placed;
    }
    if (!placed && form.dataset.errorField) placed = fieldError(form, form.dataset.errorField, errorText(result));
    if (!placed) {
      const formError = $('.form-error', form);
      if (formError) formError.textContent = errorText(result);
    }
    const first = form.querySelector('[aria-invalid="true"]');
    if (first) first.focus();
  }

  const signedAmount = (amount) => (amount > 0 ? `+${number.format(amount)}` : number.format(amount));

  // ---- layout: who is signed in, the pause banner ----

  async function layout({ required = true } = {}) {
    const token = await currentToken();
    if (!token) {
      if (required) await toSignIn();
      return false;
    }
    const payload = claims(token) || {};
    $('#who').textContent = payload.email || payload.name || payload.sub || '';
    const signOut = $('#sign-out');
    signOut.hidden = false;
    signOut.addEventListener('click', () => {
      localStorage.removeItem(TOKEN_KEY);
      sessionStorage.setItem(SIGNED_OUT_KEY, '1');
      location.assign('/app/sign-in?signed_out=1');
    });
    checkPause();
    return true;
  }

  async function checkPause() {
    const result = await api('GET', '/api/v1/sync/status');
    $('#pause-banner').hidden = !(result.ok && result.body.pausedAt && !result.body.active);
  }

  $('#banner-reactivate').addEventListener('click', async (event) => {
    const message = $('#banner-message');
    const result = await busy(event.currentTarget, () => api('POST', '/api/v1/sync/activate'));
    if (!result.ok) {
      message.textContent = errorText(result);
      return;
    }
    message.textContent = '';
    $('#pause-banner').hidden = true;
    document.dispatchEvent(new CustomEvent('sync-changed', { detail: T.banner_reactivated }));
  });

  // ---- sign-in ----

  function signInPage() {
    const params = new URLSearchParams(location.search);
    const next = safeNext(params.get('next'));
    $('#signed-out').hidden = !params.has('signed_out');
    const form = $('#dev-sign-in');
    if (form) {
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        clearErrors(form);
        const userId = form.elements.userId.value.trim();
        if (!userId) {
          fieldError(form, 'userId', T.required);
          form.elements.userId.focus();
          return;
        }
        const data = { userId };
        if (form.elements.email.value.trim()) data.email = form.elements.email.value.trim();
        if (form.elements.name.value.trim()) data.name = form.elements.name.value.trim();
        const button = $('button[type=submit]', form);
        const result = await busy(button, () => api('POST', '/app/dev-token', data, { auth: false }));
        if (!result.ok) {
          showErrors(form, result);
          return;
        }
        localStorage.setItem(TOKEN_KEY, result.body.token);
        sessionStorage.removeItem(SIGNED_OUT_KEY);
        location.assign(next);
      });
      return;
    }
    $('#sso-sign-in').addEventListener('click', async (event) => {
      const token = await busy(event.currentTarget, ssoToken);
      if (token) location.assign(next);
      else $('#sso-error').textContent = T.signin_sso_none;
    });
  }

  // ---- credits ----

  async function loadBalance() {
    const result = await api('GET', '/api/v1/credits/balance');
    if (!result.ok) return;
    $('#balance').textContent = number.format(result.body.balance);
    $('#reserved').textContent = number.format(result.body.reserved);
  }

  const SVG = 'http://www.w3.org/2000/svg';
  function svg(name, attributes = {}, text) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function niceCeiling(value) {
    const magnitude = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * magnitude) return step * magnitude;
    return 10 * magnitude;
  }

  // Stacked bars: one per day, one colour per app (the table below is the legend and the numbers).
  function drawUsage(usage) {
    const days = [];
    for (let t = Date.parse(`${usage.start}T00:00:00Z`); t <= Date.parse(`${usage.end}T00:00:00Z`); t += 86400000) {
      days.push(new Date(t).toISOString().slice(0, 10));
    }
    const perApp = new Map();
    const perDay = new Map(days.map((d) => [d, new Map()]));
    for (const item of usage.items) {
      perApp.set(item.appId, (perApp.get(item.appId) || 0) + item.credits);
      const apps = perDay.get(item.date);
      if (apps) apps.set(item.appId, item.credits);
    }
    const apps = [...perApp.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    const colour = new Map(apps.map(([app], i) => [app, `c${i % 8}`]));

    $('#usage-total').textContent = usage.total ? fmt('usage_total', { n: number.format(usage.total) }) : T.usage_none;
    const appRows = apps.map(([app, credits]) => {
      const row = document.createElement('tr');
      const name = document.createElement('td');
      const swatch = document.createElement('span');
      swatch.className = `swatch ${colour.get(app)}`;
      name.append(swatch, appName(app));
      const value = document.createElement('td');
      value.className = 'num';
      value.textContent = number.format(credits);
      row.append(name, value);
      return row;
    });
    $('#usage-apps tbody').replaceChildren(...appRows);
    $('#usage-apps').hidden = apps.length === 0;
    const dayRows = usage.items
      .slice()
      .reverse()
      .map((item) => {
        const row = document.createElement('tr');
        for (const [text, cls] of [[shortDay.format(new Date(`${item.date}T00:00:00Z`)), ''], [appName(item.appId), ''], [number.format(item.credits), 'num']]) {
          const cell = document.createElement('td');
          cell.textContent = text;
          if (cls) cell.className = cls;
          row.append(cell);
        }
        return row;
      });
    $('#usage-days tbody').replaceChildren(...dayRows);
    $('#usage-days').closest('details').hidden = dayRows.length === 0;

    const box = $('#usage-chart');
    box.hidden = usage.total === 0; // the sentence above says it; empty axes would say nothing
    const width = Math.max(280, box.clientWidth);
    const height = 200;
    const left = 36;
    const right = 4;
    const bottom = 22;
    const top = 8;
    const plot = height - top - bottom;
    const totals = days.map((d) => [...perDay.get(d).values()].reduce((a, b) => a + b, 0));
    const max = niceCeiling(Math.max(1, ...totals));
    const chart = svg('svg', {
      width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'data-total': usage.total,
      'aria-label': fmt('usage_chart_label', { n: number.format(usage.total) }),
    });
    for (const fraction of [0, 0.5, 1]) {
      const y = top + plot - plot * fraction;
      chart.append(svg('line', { x1: left, x2: width - right, y1: y, y2: y, class: 'grid' }));
      chart.append(svg('text', { x: left - 6, y: y + 4, class: 'axis', 'text-anchor': 'end' }, number.format(max * fraction)));
    }
    const slot = (width - left - right) / days.length;
    const bar = Math.max(2, slot * 0.7);
    days.forEach((d, i) => {
      const x = left + i * slot + (slot - bar) / 2;
      const group = svg('g', { 'data-date': d, 'data-total': totals[i] });
      let y = top + plot;
      for (const [app] of apps) {
        const credits = perDay.get(d).get(app);
        if (!credits) continue;
        const h = (credits / max) * plot;
        y -= h;
        const rect = svg('rect', { x, y, width: bar, height: Math.max(h, 1), class: colour.get(app), 'data-app': app });
        rect.append(svg('title', {}, `${shortDay.format(new Date(`${d}T00:00:00Z`))} · ${app}: ${number.format(credits)}`));
        group.append(rect);
      }
      chart.append(group);
      const labelEvery = width < 500 ? 10 : 5;
      if ((days.length - 1 - i) % labelEvery === 0) {
        const last = i === days.length - 1;
        const label = svg('text', { x: last ? x + bar : x + bar / 2, y: height - 6, class: 'axis', 'text-anchor': last ? 'end' : 'middle' },
          shortDay.format(new Date(`${d}T00:00:00Z`)));
        chart.append(label);
      }
    });
    box.replaceChildren(chart);
  }

  async function loadUsage() {
    const result = await api('GET', '/api/v1/credits/usage?days=30');
    if (!result.ok) {
      $('#usage-error').textContent = errorText(result);
      return;
    }
    drawUsage(result.body);
    let resizing;
    window.addEventListener('resize', () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => drawUsage(result.body), 150);
    });
  }

  let cursor = null;
  // What the service itself wrote in a ledger row is said in the page's language, from the row's type and
  // metadata; what a caller sent (a debit's description, a grant's reason) stays as it was sent.
  function describe(tx) {
    const m = tx.metadata || {};
    const n = number.format(Math.abs(tx.amount));
    if (m.giftCodeId && tx.type === 'gift' && tx.amount < 0) return fmt('tx_gift_made', { n });
    if (m.giftCodeId && tx.type === 'gift') {
      // The sender's name is only in the stored sentence ("Gift from …", or a friend when unnamed).
      const name = (/^Gift from (.+)$/.exec(tx.description) || [])[1];
      return fmt('tx_gift_from', { name: !name || name === 'a friend' ? T.gift_someone : name });
    }
    if (m.giftCodeId && tx.type === 'refund') return T.tx_gift_cancelled;
    if (m.giftCodeId && tx.type === 'expiry') return T.tx_gift_expired;
    if (m.interval && m.periodStart) return fmt('tx_sync', { interval: T[`interval_${m.interval}`] || m.interval });
    if (m.purchaseId && tx.type === 'purchase') return fmt('tx_purchase', { n });
    if (m.purchaseId && tx.type === 'reversal') return fmt(tx.amount < 0 ? 'tx_taken_back' : 'tx_restored', { n });
    return tx.description;
  }


  async function loadHistory(reset) {
    const form = $('#history-filter');
    const params = new URLSearchParams({ limit: '20' });
    if (form.elements.type.value) params.set('type', form.elements.type.value);
    if (form.elements.appId.value.trim()) params.set('appId', form.elements.appId.value.trim());
    if (!reset && cursor) params.set('cursor', cursor);
    const result = await api('GET', `/api/v1/credits/transactions?${params}`);
    const list = $('#history');
    if (!result.ok) {
      $('#history-error').textContent = errorText(result);
      return;
    }
    $('#history-error').textContent = '';
    if (reset) list.replaceChildren();
    for (const tx of result.body) {
      const item = fill('tx-item', {
        description: describe(tx),
        amount: signedAmount(tx.amount),
        meta: [moment.format(new Date(tx.createdAt)), T[`type_${tx.type}`] || tx.type, appName(tx.appId)].join(' · '),
      });
      item.querySelector('.amount').classList.add(tx.amount < 0 ? 'minus' : 'plus');
      list.append(item);
    }
    cursor = result.headers.get('X-Next-Cursor');
    $('#history-more').hidden = !cursor;
    $('#history-empty').hidden = list.children.length > 0;
  }

  // The default packages' descriptions are the service's English ("1,000 credits — 10 % off"): say the
  // saving in the page's language instead; a description an operator wrote stays.
  function packageLine(pack) {
    const generated = /^[\d,.]+ credits( — \d+ % off)?$/.test(pack.description || '');
    if (pack.description && !generated) return pack.description;
    const pct = Math.round(100 - (100 * pack.priceEuroCents) / pack.credits);
    return pct > 0 ? fmt('pack_saving', { pct }) : '';
  }

  async function loadPackages() {
    const result = await api('GET', '/api/v1/credits/packages', undefined, { auth: false });
    if (!result.ok) {
      $('#packages-error').textContent = errorText(result);
      return;
    }
    const items = result.body.map((pack) => {
      const item = fill('package-item', {
        name: pack.name,
        credits: fmt('credits_n', { n: number.format(pack.credits) }),
        description: packageLine(pack),
      });
      const buy = item.querySelector('[data-f="buy"]');
      buy.textContent = `${T.buy} · ${euro.format(pack.priceEuroCents / 100)}`;
      buy.setAttribute('aria-label', `${T.buy}: ${pack.name}, ${euro.format(pack.priceEuroCents / 100)}`);
      buy.addEventListener('click', () => buyPackage(buy, pack));
      return item;
    });
    $('#package-list').replaceChildren(...items);
    $('#packages-none').hidden = items.length > 0;
  }

  async function buyPackage(button, pack) {
    const origin = location.origin;
    const result = await busy(button, () =>
      api('POST', '/api/v1/credits/purchase', {
        packageId: pack.id,
        successUrl: `${origin}/app/purchase/{PURCHASE_ID}`,
        cancelUrl: `${origin}/app?checkout=cancelled`,
      }),
    );
    if (!result.ok || !result.body.checkoutUrl) {
      $('#packages-error').textContent = errorText(result);
      return;
    }
    button.disabled = true;
    button.textContent = T.working;
    location.assign(result.body.checkoutUrl);
  }

  async function creditsPage() {
    if (!(await layout())) return;
    $('#history-filter').addEventListener('submit', (event) => {
      event.preventDefault();
      busy($('button[type=submit]', event.currentTarget), () => loadHistory(true));
    });
    $('#history-more').addEventListener('click', (event) => busy(event.currentTarget, () => loadHistory(false)));
    document.addEventListener('sync-changed', loadBalance);
    await Promise.all([loadBalance(), loadUsage(), loadHistory(true), loadPackages()]);
    if (location.hash === '#packages') $('#packages').focus();
  }

  // ---- purchase status: polls until Stripe's webhook has settled it ----

  async function purchasePage() {
    if (!(await layout())) return;
    const id = $('#main').dataset.purchaseId;
    const state = $('#purchase-state');
    let tries = 0;
    const poll = async () => {
      const result = await api('GET', `/api/v1/credits/purchase/${encodeURIComponent(id)}`);
      if (!result.ok) {
        state.textContent = result.status === 404 || result.status === 400 ? T.purchase_not_found : errorText(result);
        state.dataset.status = 'error';
        return;
      }
      const purchase = result.body;
      $('#purchase-summary').textContent = fmt('purchase_summary', {
        credits: number.format(purchase.credits),
        price: euro.format(purchase.priceEuroCents / 100),
      });
      state.dataset.status = purchase.status;
      if (purchase.status === 'completed') {
        state.textContent = fmt('purchase_completed', { credits: number.format(purchase.credits) });
        $('#purchase-slow').hidden = true;
        return;
      }
      if (purchase.status === 'failed') {
        state.textContent = T.purchase_failed;
        return;
      }
      if (purchase.status !== 'pending') {
        state.textContent = fmt('purchase_other', { status: purchase.status });
        return;
      }
      const spinner = document.createElement('span');
      spinner.className = 'spinner';
      spinner.setAttribute('aria-hidden', 'true');
      if (!tries) state.replaceChildren(spinner, ` ${T.purchase_pending}`);
      tries += 1;
      $('#purchase-slow').hidden = tries < 40;
      setTimeout(poll, tries < 40 ? 1500 : 10000);
    };
    poll();
  }

  // ---- Cloud Sync ----

  async function syncPage() {
    if (!(await layout())) return;
    const form = $('#sync-form');
    const state = $('#sync-state');
    const message = $('#sync-message');
    const error = $('#sync-error');
    const buttons = Object.fromEntries([...form.querySelectorAll('[data-action]')].map((b) => [b.dataset.action, b]));
    const chosen = () => form.elements.interval.value;

    function render(status) {
      const cancelled = status.cancelAtPeriodEnd;
      let key = 'inactive';
      if (status.gifted) key = 'gifted';
      else if (cancelled) key = 'cancelled';
      else if (status.active) key = 'active';
      else if (status.pausedAt) key = 'paused';
      state.dataset.state = key;
      state.textContent = fmt(`sync_${key}`, { date: date(status.activeUntil) });
      $('#sync-detail').textContent = status.nextChargeAt
        ? fmt('sync_next_charge', { date: date(status.nextChargeAt), amount: number.format(status.nextChargeAmount) })
        : '';
      form.elements.interval.value = status.interval;
      for (const radio of form.elements.interval) radio.disabled = status.gifted;
      const renewing = status.active && !status.gifted && !cancelled;
      buttons.activate.hidden = status.active || status.gifted || cancelled; // cancelled: *resume* instead
      buttons.resume.hidden = !cancelled;
      buttons.change.hidden = !renewing;
      buttons.cancel.hidden = !renewing;
      current = status.interval;
      offerChange();
    }

    // Changing to the interval already running would change nothing: offer it only for another one.
    let current = null;
    const offerChange = () => {
      buttons.change.disabled = chosen() === current;
    };
    for (const radio of form.elements.interval) radio.addEventListener('change', offerChange);

    async function refresh() {
      const result = await api('GET', '/api/v1/sync/status');
      if (result.ok) render(result.body);
      else error.textContent = errorText(result);
    }

    async function act(button, path, data, success) {
      say(message, '');
      error.textContent = '';
      const result = await busy(button, () => api('POST', path, data));
      if (!result.ok) {
        error.textContent = errorText(result);
        return;
      }
      await refresh();
      say(message, success(result.body));
      checkPause();
    }

    buttons.activate.addEventListener('click', () =>
      act(buttons.activate, '/api/v1/sync/activate', { interval: chosen() }, (r) =>
        fmt('sync_activated', { amount: number.format(r.amountCharged) })),
    );
    buttons.resume.addEventListener('click', () =>
      act(buttons.resume, '/api/v1/sync/activate', { interval: chosen() }, () => T.sync_resumed),
    );
    buttons.change.addEventListener('click', () =>
      act(buttons.change, '/api/v1/sync/change-interval', { interval: chosen() }, (r) =>
        fmt('sync_changed', { date: date(r.effectiveAt), amount: number.format(r.nextChargeAmount) })),
    );
    buttons.cancel.addEventListener('click', () =>
      act(buttons.cancel, '/api/v1/sync/deactivate', undefined, (r) =>
        fmt('sync_cancelled_ok', { date: date(r.activeUntil) })),
    );
    document.addEventListener('sync-changed', async (event) => {
      await refresh();
      say(message, event.detail);
    });
    await refresh();
  }

  // ---- gifts ----

  async function loadCreated() {
    const result = await api('GET', '/api/v1/gifts/me/created');
    if (!result.ok) {
      $('#created-error').textContent = errorText(result);
      return;
    }
    const items = result.body.map((gift) => {
      const meta = [gift.code];
      if (gift.targetEmail) meta.push(fmt('gift_for', { email: gift.targetEmail }));
      if (gift.status === 'active' && gift.expiresAt) meta.push(fmt('gift_expires', { date: date(gift.expiresAt) }));
      const item = fill('created-item', {
        title: fmt('credits_n', { n: number.format(gift.totalCredits) }),
        status: T[`gift_status_${gift.status}`] || gift.status,
        meta: meta.join(' · '),
      });
      item.dataset.code = gift.code;
      item.querySelector('.badge').classList.add(gift.status);
      if (gift.status === 'active') {
        const cancel = document.createElement('button');
        cancel.type = 'button';
        cancel.className = 'danger small';
        cancel.textContent = T.cancel_gift;
        cancel.setAttribute('aria-label', `${T.cancel_gift}: ${gift.code}`);
        cancel.addEventListener('click', () => cancelGift(cancel, gift));
        item.querySelector('[data-f="actions"]').append(cancel);
      }
      return item;
    });
    $('#created-list').replaceChildren(...items);
    $('#created-none').hidden = items.length > 0;
  }

  async function cancelGift(button, gift) {
    const result = await busy(button, () => api('DELETE', `/api/v1/gifts/${gift.id}`));
    if (!result.ok) {
      $('#created-error').textContent = errorText(result);
      return;
    }
    $('#created-error').textContent = '';
    say($('#created-message'), fmt('cancelled_ok', { credits: number.format(result.body.refundedCredits) }));
    await loadCreated();
  }

  async function loadReceived() {
    const result = await api('GET', '/api/v1/gifts/me/received');
    if (!result.ok) return;
    const items = result.body.map((gift) => {
      const item = fill('received-item', {
        title: gift.creatorName ? fmt('from_name', { name: gift.creatorName }) : gift.code,
        amount: signedAmount(gift.creditsReceived),
        meta: [date(gift.createdAt), gift.code, gift.message].filter(Boolean).join(' · '),
      });
      item.querySelector('.amount').classList.add('plus');
      return item;
    });
    $('#received-list').replaceChildren(...items);
    $('#received-none').hidden = items.length > 0;
  }

  function optionalInt(value) {
    const text = value.trim();
    return text === '' ? null : Number(text);
  }

  async function giftsPage() {
    if (!(await layout())) return;
    const create = $('#create-form');
    create.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(create);
      const data = {
        totalCredits: optionalInt(create.elements.totalCredits.value),
        expirationDays: optionalInt(create.elements.expirationDays.value) ?? 90,
      };
      const email = create.elements.targetEmail.value.trim();
      if (email) Object.assign(data, { type: 'personalized', targetEmail: email });
      if (create.elements.message.value.trim()) data.message = create.elements.message.value.trim();
      const result = await busy($('button[type=submit]', create), () => api('POST', '/api/v1/gifts', data));
      if (!result.ok) {
        showErrors(create, result);
        return;
      }
      create.reset();
      $('#created').hidden = false;
      $('#created-text').textContent = fmt('created_ok', { credits: number.format(result.body.totalCredits) });
      $('#created-code').textContent = result.body.code;
      $('#created-link').value = result.body.shortUrl;
      $('#copy-status').textContent = '';
      await loadCreated();
    });
    $('#copy-link').addEventListener('click', async () => {
      const link = $('#created-link');
      try {
        await navigator.clipboard.writeText(link.value);
      } catch {
        link.select(); // the clipboard may be refused: leave the link selected for a manual copy
        return;
      }
      $('#copy-status').textContent = T.copied;
    });
    const redeem = $('#redeem-form');
    redeem.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(redeem);
      say($('#redeem-message'), '');
      const code = redeem.elements.code.value.trim();
      if (!code) {
        fieldError(redeem, 'code', T.err_code);
        redeem.elements.code.focus();
        return;
      }
      const result = await busy($('button[type=submit]', redeem), () =>
        api('POST', `/api/v1/gifts/${encodeURIComponent(code)}/redeem`),
      );
      if (!result.ok) {
        showErrors(redeem, result);
        return;
      }
      redeem.reset();
      const from = result.body.creatorName ? ` (${fmt('from_name', { name: result.body.creatorName })})` : '';
      say($('#redeem-message'), fmt('redeemed_ok', { credits: number.format(result.body.creditsReceived) }) + from);
      await loadReceived();
    });
    await Promise.all([loadCreated(), loadReceived()]);
  }

  // ---- the public gift page ----

  async function giftPage() {
    const code = $('#main').dataset.code;
    const signedIn = await layout({ required: false });
    if ($('#main').dataset.found !== 'yes') return; // the server said why (not found, too many tries)
    const error = $('#gift-error');
    const result = await api('GET', `/api/v1/gifts/${encodeURIComponent(code)}`, undefined, { auth: false });
    if (!result.ok) {
      $('#gift-amount').textContent = '';
      error.textContent = errorText(result);
      return;
    }
    const gift = result.body;
    $('#gift-from').textContent = fmt('gift_from', { name: gift.creatorName || T.gift_someone });
    $('#gift-amount').textContent = fmt('credits_n', { n: number.format(gift.totalCredits) });
    say($('#gift-message'), gift.message || '');
    $('#gift-expires').textContent = gift.expiresAt ? fmt('gift_valid_until', { date: date(gift.expiresAt) }) : '';
    $('#gift-personal').hidden = gift.type !== 'personalized';
    if (gift.status !== 'active' || gift.redeemed) {
      const status = gift.redeemed ? 'depleted' : gift.status;
      say($('#gift-gone'), fmt('gift_gone', { status: T[`gift_status_${status}`] || status }));
      return;
    }
    const redeem = $('#gift-redeem');
    if (!signedIn) {
      const link = $('#gift-sign-in');
      link.href = `/app/sign-in?next=${encodeURIComponent(`${location.pathname}?redeem=1`)}`;
      link.hidden = false;
      return;
    }
    redeem.hidden = false;
    const run = async () => {
      error.textContent = '';
      const answer = await busy(redeem, () => api('POST', `/api/v1/gifts/${encodeURIComponent(code)}/redeem`));
      if (!answer.ok) {
        error.textContent = errorText(answer);
        return;
      }
      redeem.hidden = true;
      say($('#gift-result'), fmt('redeemed_ok', { credits: number.format(answer.body.creditsReceived) }));
    };
    redeem.addEventListener('click', run);
    // Back from signing in to redeem: do what the visitor asked for, once.
    if (new URLSearchParams(location.search).get('redeem') === '1') {
      history.replaceState(null, '', location.pathname);
      run();
    }
  }

  const pages = {
    'sign-in': signInPage,
    credits: creditsPage,
    purchase: purchasePage,
    sync: syncPage,
    gifts: giftsPage,
    gift: giftPage,
  };
  (pages[page] || (() => {}))();
})();
