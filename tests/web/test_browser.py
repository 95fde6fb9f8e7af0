"""What a person does on the pages, in real headless Chromium against the real service (issue 12)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import msgspec
from playwright.async_api import BrowserContext, FloatRect, Page, Route, expect

from mana_credits import ledger
from mana_credits.db.pool import connect
from mana_credits.ledger.schemas import TxType
from mana_credits.web import i18n
from tests.payments.stripe_fakes import StripeStub, event, sign
from tests.support import Actor, service_headers
from tests.web.conftest import ManaAuthStub, Site, shoot, sign_in

BERLIN = ZoneInfo("Europe/Berlin")


async def balance(site: Site, actor: Actor) -> int:
    return (await site.api.balance(actor))["balance"]


async def gift(site: Site, creator: Actor, total: int, **body: Any) -> dict[str, Any]:
    response = await site.client.post(
        "/api/v1/gifts", json={"totalCredits": total, **body}, headers=creator.headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


# ---- sign-in and balance ----


async def test_sign_in_as_and_see_the_balance(page: Page, site: Site) -> None:
    user = await site.user(funds=1234)
    await page.goto(f"{site.url}/app")
    await page.wait_for_url(re.compile(r"/app/sign-in\?next=%2Fapp$"))  # not signed in yet

    await sign_in(page, site, user)

    await expect(page.locator("#balance")).to_have_text("1.234")
    await expect(page.locator("#reserved")).to_have_text("0")
    await expect(page.locator("#who")).to_have_text(user.email)
    await page.get_by_role("button", name="Abmelden").click()
    await page.wait_for_url(re.compile(r"/app/sign-in\?signed_out=1$"))
    await expect(page.get_by_text("Du bist abgemeldet.")).to_be_visible()
    await page.goto(f"{site.url}/app/gifts")
    await page.wait_for_url(re.compile(r"/app/sign-in"))


async def test_sign_in_field_error(page: Page, site: Site) -> None:
    await page.goto(f"{site.url}/app/sign-in")
    await page.get_by_role("button", name="Anmelden als dieser Nutzer").click()

    field = page.get_by_label("Nutzer-ID")
    await expect(page.locator("#userId-error")).to_have_text("Bitte ausfüllen.")
    await expect(field).to_have_attribute("aria-invalid", "true")
    await expect(field).to_be_focused()


async def test_production_sign_in_with_the_mana_session(
    context: BrowserContext, sso_site: Site, auth_stub: ManaAuthStub
) -> None:
    page = await context.new_page()
    visited: list[str] = []
    page.on("framenavigated", lambda frame: visited.append(frame.url))
    await page.goto(f"{sso_site.url}/app/sync")
    await page.wait_for_url(re.compile(r"/app/sign-in\?next=%2Fapp%2Fsync$"))
    await page.get_by_role("button", name="Mit Mana-Konto anmelden").click()
    await expect(page.locator("#sso-error")).to_contain_text("nicht angemeldet")

    user_id = f"sso-{uuid.uuid4().hex[:8]}"
    await page.goto(f"{auth_stub.url}/sign-in?user={user_id}")  # signing in to Mana elsewhere
    await page.goto(f"{sso_site.url}/app/sign-in?next=/app/sync")
    await page.get_by_role("button", name="Mit Mana-Konto anmelden").click()

    await page.wait_for_url(f"{sso_site.url}/app/sync")
    await expect(page.locator("#sync-state")).to_have_text("Nicht aktiv")
    await expect(page.locator("#who")).to_have_text(f"{user_id}@example.com")
    token = await page.evaluate("localStorage.getItem('@auth/appToken')")
    assert token and token.count(".") == 2
    assert not [url for url in visited if token in url]
    # With the Mana session, a new page signs in by itself.
    await page.evaluate("localStorage.clear()")
    await page.goto(f"{sso_site.url}/app")
    await expect(page.locator("#balance")).to_have_text("0")


# ---- credits: chart, history, packages, Checkout ----


async def test_usage_chart_totals(page: Page, site: Site, web_database: str) -> None:
    user = await site.user(funds=500)
    await site.use(user, 5, "chat")
    await site.use(user, 7, "chat")
    await site.use(user, 5, "picture")
    conn = await asyncpg.connect(web_database)
    try:
        await conn.execute(
            "INSERT INTO credits.usage_stats (user_id, app_id, credits_used, date) "
            "VALUES ($1, 'chat', 7, date_trunc('day', now() - interval '3 days', 'Europe/Berlin'))",
            user.id,
        )
    finally:
        await conn.close()
    today = datetime.now(BERLIN).date()

    await sign_in(page, site, user)

    chart = page.locator("#usage-chart svg")
    await expect(chart).to_have_attribute("data-total", "24")
    await expect(page.locator("#usage-total")).to_have_text("Gesamt: 24 Credits")
    await expect(chart.locator(f'g[data-date="{today}"]')).to_have_attribute("data-total", "17")
    three_ago = (today - timedelta(days=3)).isoformat()
    await expect(chart.locator(f'g[data-date="{three_ago}"]')).to_have_attribute("data-total", "7")
    assert await chart.locator("g[data-date]").count() == 30
    day_totals = await chart.locator("g[data-date]").evaluate_all(
        "gs => gs.map(g => Number(g.dataset.total))"
    )
    assert sum(day_totals) == 24
    assert await chart.locator(f'g[data-date="{today}"] rect[data-app="picture"]').count() == 1
    rows = page.locator("#usage-apps tbody tr")
    await expect(rows).to_have_text(["chat19", "picture5"])


async def test_history_pages_with_the_cursor_and_filters(page: Page, site: Site) -> None:
    user = await site.user(funds=500)
    for i in range(22):
        await site.use(user, 1, "chat" if i % 2 else "picture")

    await sign_in(page, site, user)

    entries = page.locator("#history li")
    await expect(entries).to_have_count(20)
    await page.get_by_role("button", name="Mehr laden").click()
    await expect(entries).to_have_count(23)  # 22 usages and the funding grant
    await expect(page.get_by_role("button", name="Mehr laden")).to_be_hidden()

    await page.get_by_label("Art", exact=True).select_option("grant")
    await page.get_by_role("button", name="Filtern").click()
    await expect(entries).to_have_count(1)
    await expect(entries.first.locator(".amount")).to_have_text("+500")

    await page.get_by_label("Art", exact=True).select_option("")
    await page.get_by_label("App", exact=True).fill("chat")
    await page.get_by_role("button", name="Filtern").click()
    await expect(entries).to_have_count(11)
    await expect(entries.first.locator(".meta")).to_contain_text("Verbrauch · chat")


async def _stripe_checkout_page(route: Route, stub: StripeStub) -> None:
    """Stripe's hosted Checkout page, paid at once: back to the success URL of the last session."""
    success = next(
        form["success_url"] for path, form, _ in reversed(stub.requests) if path == "/v1/checkout/sessions"
    )
    await route.fulfill(status=303, headers={"Location": success})


async def test_checkout_purchase_returns_to_a_status_page_that_completes(
    context: BrowserContext, page: Page, site: Site, stripe_checkout: StripeStub, web_database: str
) -> None:
    await context.route(
        "https://checkout.stripe.test/**", lambda route: _stripe_checkout_page(route, stripe_checkout)
    )
    user = await site.user()
    await sign_in(page, site, user)
    first = page.locator("#package-list li").first
    credits_text = await first.locator(".big").inner_text()
    credits = int(re.sub(r"\D", "", credits_text))

    await first.get_by_role("button").click()

    await page.wait_for_url(re.compile(r"/app/purchase/[0-9a-f-]{36}$"))
    purchase_id = page.url.rsplit("/", 1)[1]
    state = page.locator("#purchase-state")
    await expect(state).to_have_attribute("data-status", "pending")
    await expect(state).to_contain_text("Die Zahlung wird bestätigt")

    conn = await asyncpg.connect(web_database)
    try:
        row = await conn.fetchrow("SELECT * FROM credits.purchases WHERE id = $1::uuid", purchase_id)
    finally:
        await conn.close()
    assert row is not None and row["user_id"] == user.id
    session = {
        "id": row["stripe_checkout_session_id"], "object": "checkout.session", "payment_status": "paid",
        "status": "complete", "amount_total": row["price_euro_cents"], "currency": "eur",
        "payment_intent": f"pi_web_{purchase_id[:8]}", "client_reference_id": purchase_id,
        "metadata": {"userId": user.id, "packageId": str(row["package_id"]), "purchaseId": purchase_id},
    }  # fmt: skip
    payload = msgspec.json.encode(event("checkout.session.completed", session))
    stamp = int(site.clock.now().timestamp())
    webhook = await site.client.post(
        "/api/v1/webhooks/stripe",
        content=payload,
        headers={"Stripe-Signature": sign(payload, stamp), "Content-Type": "application/json"},
    )
    assert webhook.status_code == 200, webhook.text

    await expect(state).to_have_attribute("data-status", "completed", timeout=20_000)
    await expect(state).to_contain_text(f"Abgeschlossen: {credits_text} wurden gutgeschrieben.")
    assert await balance(site, user) == credits


async def test_cancelled_checkout_says_nothing_was_charged(page: Page, site: Site) -> None:
    user = await site.user()
    await sign_in(page, site, user, "/app?checkout=cancelled")
    await expect(page.get_by_text("Der Kauf wurde abgebrochen. Es wurde nichts berechnet.")).to_be_visible()


async def test_buying_without_stripe_keys_says_payments_are_not_set_up(
    page: Page, site_without_stripe: Site
) -> None:
    site = site_without_stripe
    user = await site.user(funds=10)
    await sign_in(page, site, user)
    await page.locator("#package-list li").first.get_by_role("button").click()
    error = page.locator("#packages-error")
    await expect(error).to_contain_text("auf diesem Server nicht eingerichtet")
    await expect(error).not_to_contain_text("später")  # waiting would not help
    assert await balance(site, user) == 10


# ---- gifts ----


async def test_redeem_a_gift_code_and_every_refusal(page: Page, site: Site) -> None:
    creator = await site.user(funds=1000, name="Clara")
    user = await site.user()
    first = await gift(site, creator, 50, message="Viel Spaß!")
    await sign_in(page, site, user, "/app/gifts")
    code = page.get_by_label("Code")
    error = page.locator("#code-error")

    # Codes are forgiving: lower case and dashes are fine.
    await code.fill(f"{first['code'][:4].lower()}-{first['code'][4:].lower()}")
    await page.get_by_role("button", name="Einlösen").click()
    await expect(page.locator("#redeem-message")).to_have_text(
        "50 Credits wurden dir gutgeschrieben. (von Clara)"
    )
    await expect(page.locator("#received-list li")).to_have_count(1)
    await expect(page.locator("#received-list li .amount")).to_have_text("+50")
    assert await balance(site, user) == 50

    personal = await gift(site, creator, 10, type="personalized", targetEmail="someone-else@example.com")
    short_lived = await gift(site, creator, 10, expirationDays=1)
    cancelled = await gift(site, creator, 10)
    response = await site.client.delete(f"/api/v1/gifts/{cancelled['id']}", headers=creator.headers)
    assert response.status_code == 200
    own = await gift(site, user, 10)
    refusals = [
        (first["code"], "Dieser Code wurde schon eingelöst."),
        ("ZZZZ2222", "Diesen Code gibt es nicht. Prüfe die Schreibweise."),
        (personal["code"], "Dieses Geschenk ist für eine andere E-Mail-Adresse bestimmt."),
        (cancelled["code"], "Dieses Geschenk wurde storniert."),
        (own["code"], "Das ist dein eigenes Geschenk: Du kannst es stornieren, aber nicht einlösen."),
    ]
    for typed, message in refusals:
        await code.fill(typed)
        await page.get_by_role("button", name="Einlösen").click()
        await expect(error).to_have_text(message)
        await expect(code).to_have_attribute("aria-invalid", "true")
        await expect(code).to_have_value(typed)  # what was typed stays

    site.clock.offset += timedelta(days=2)
    await code.fill(short_lived["code"])
    await page.get_by_role("button", name="Einlösen").click()
    await expect(error).to_have_text("Dieser Code ist abgelaufen.")
    assert await balance(site, user) == 40


async def test_create_copy_and_cancel_a_gift(context: BrowserContext, page: Page, site: Site) -> None:
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    user = await site.user(funds=500, name="Gina")
    await sign_in(page, site, user, "/app/gifts")

    await page.get_by_label("Credits", exact=True).fill("120")
    await page.get_by_label("Nachricht (optional)").fill("Alles Gute!")
    await page.get_by_role("button", name="Geschenk erstellen").click()

    await expect(page.locator("#created-text")).to_have_text(
        "Geschenk über 120 Credits erstellt. Teile diesen Link:"
    )
    link = await page.locator("#created-link").input_value()
    assert re.fullmatch(rf"{re.escape(site.url)}/g/[A-Z2-9]{{8}}", link)
    await page.get_by_role("button", name="Link kopieren").click()
    await expect(page.locator("#copy-status")).to_have_text("Kopiert.")
    assert await page.evaluate("navigator.clipboard.readText()") == link
    assert await balance(site, user) == 380
    item = page.locator("#created-list li").first
    await expect(item.locator(".badge")).to_have_text("Aktiv")

    public = await context.new_page()
    await public.goto(link)
    await expect(public.locator("#gift-amount")).to_have_text("120 Credits")
    await expect(public.locator("#gift-from")).to_have_text("Gina schenkt dir")
    await expect(public.locator("#gift-message")).to_have_text("Alles Gute!")
    await public.close()

    await item.get_by_role("button", name="Stornieren").click()
    await expect(page.locator("#created-message")).to_have_text(
        "Storniert: 120 Credits wurden dir zurückgebucht."
    )
    await expect(item.locator(".badge")).to_have_text("Storniert")
    await expect(item.get_by_role("button", name="Stornieren")).to_have_count(0)
    assert await balance(site, user) == 500


async def test_errors_are_shown_next_to_their_field(page: Page, site: Site) -> None:
    user = await site.user(funds=100)
    await sign_in(page, site, user, "/app/gifts")
    amount = page.get_by_label("Credits", exact=True)

    await amount.fill("5000")
    await page.get_by_label("Nachricht (optional)").fill("Für dich")
    await page.get_by_role("button", name="Geschenk erstellen").click()
    await expect(page.locator("#totalCredits-error")).to_have_text(
        "Nicht genug Credits: 5000 nötig, 100 vorhanden."
    )
    await expect(amount).to_have_attribute("aria-invalid", "true")
    await expect(amount).to_be_focused()
    await expect(page.get_by_label("Nachricht (optional)")).to_have_value("Für dich")

    await amount.fill("0")
    await page.get_by_role("button", name="Geschenk erstellen").click()
    await expect(page.locator("#totalCredits-error")).to_have_text("Bitte 1 bis 10.000 Credits.")

    await amount.fill("10")
    await page.get_by_label("Gültig für (Tage)").fill("400")
    await page.get_by_role("button", name="Geschenk erstellen").click()
    await expect(page.locator("#expirationDays-error")).to_have_text("Bitte 1 bis 365 Tage.")
    await expect(page.locator("#totalCredits-error")).to_be_hidden()
    await expect(amount).not_to_have_attribute("aria-invalid", "true")
    assert await balance(site, user) == 100


async def test_public_gift_page_signing_in_redeems_it(page: Page, site: Site) -> None:
    creator = await site.user(funds=100, name="Paul")
    made = await gift(site, creator, 25, message="Für den Anfang")
    user = await site.user()

    await page.goto(f"{site.url}/g/{made['code']}")
    await expect(page.locator("#gift-from")).to_have_text("Paul schenkt dir")
    await expect(page.locator("#gift-amount")).to_have_text("25 Credits")
    await page.get_by_role("link", name="Anmelden und einlösen").click()
    await page.get_by_label("Nutzer-ID").fill(user.id)
    await page.get_by_role("button", name="Anmelden als dieser Nutzer").click()

    await expect(page.locator("#gift-result")).to_have_text("25 Credits wurden dir gutgeschrieben.")
    assert page.url == f"{site.url}/g/{made['code']}"
    assert await balance(site, user) == 25


# ---- Cloud Sync ----


async def test_activate_change_cancel_and_resume_sync(page: Page, site: Site) -> None:
    user = await site.user(funds=100)
    await sign_in(page, site, user, "/app/sync")
    state = page.locator("#sync-state")
    message = page.locator("#sync-message")
    await expect(state).to_have_text("Nicht aktiv")
    await expect(page.get_by_text("30 Credits")).to_be_visible()

    await page.get_by_label("Vierteljährlich").check()
    await page.get_by_role("button", name="Aktivieren").click()
    await expect(message).to_have_text("Cloud Sync ist aktiv. Abgebucht: 90 Credits.")
    await expect(state).to_have_text("Aktiv")
    await expect(page.locator("#sync-detail")).to_contain_text("90 Credits")
    assert await balance(site, user) == 10

    change = page.get_by_role("button", name="Zeitraum ändern")
    await expect(change).to_be_disabled()  # the interval already running is no change
    await page.get_by_role("radio", name=re.compile("^Jährlich")).check()
    await expect(change).to_be_enabled()
    await change.click()
    await expect(message).to_contain_text("gilt der neue Zeitraum (360 Credits)")
    await expect(page.locator("#sync-detail")).to_contain_text("360 Credits")

    await page.get_by_role("button", name="Kündigen").click()
    await expect(state).to_have_attribute("data-state", "cancelled")
    await expect(state).to_contain_text("Gekündigt – aktiv bis")
    await expect(message).to_contain_text("Cloud Sync bleibt bis")
    await expect(page.get_by_role("button", name="Kündigen")).to_be_hidden()

    await page.get_by_role("button", name="Fortsetzen").click()
    await expect(message).to_have_text("Die Kündigung ist aufgehoben.")
    await expect(state).to_have_text("Aktiv")
    assert await balance(site, user) == 10  # resuming inside the paid period is free


async def test_paused_sync_shows_the_banner_on_every_page(
    context: BrowserContext, page: Page, site: Site
) -> None:
    user = await site.user(funds=30)
    response = await site.client.post("/api/v1/sync/activate", headers=user.headers)
    assert response.status_code == 200, response.text
    site.clock.offset += timedelta(days=32)
    renewal = await site.client.post("/api/v1/internal/sync/charge-recurring", headers=service_headers())
    assert renewal.json()["paused"] >= 1
    creator = await site.user(funds=10)
    code = (await gift(site, creator, 5))["code"]

    await sign_in(page, site, user)
    banner = page.locator("#pause-banner")
    for path in [
        "/app",
        "/app/sync",
        "/app/gifts",
        f"/g/{code}",
        "/app/purchase/00000000-0000-0000-0000-000000000000",
    ]:
        await page.goto(f"{site.url}{path}")
        await expect(banner).to_be_visible()
        await expect(banner).to_contain_text("Cloud Sync ist pausiert")
        await expect(banner.get_by_role("link", name="Credits kaufen")).to_have_attribute(
            "href", "/app#packages"
        )

    await page.goto(f"{site.url}/app/sync")
    await expect(page.locator("#sync-state")).to_have_text("Pausiert – zu wenig Credits")
    await banner.get_by_role("button", name="Wieder aktivieren").click()
    await expect(banner.locator("#banner-message")).to_have_text(
        "Nicht genug Credits: 30 nötig, 0 vorhanden."
    )

    await site.api.fund(user.id, 30)
    await banner.get_by_role("button", name="Wieder aktivieren").click()
    await expect(banner).to_be_hidden()
    await expect(page.locator("#sync-state")).to_have_text("Aktiv")
    await expect(page.locator("#sync-message")).to_have_text("Cloud Sync ist wieder aktiv.")
    assert await balance(site, user) == 0


# ---- layout at desktop width (issue #27 item 10: what the screenshots showed) ----


async def box(page: Page, selector: str) -> FloatRect:
    found = await page.locator(selector).first.bounding_box()
    assert found is not None, selector
    return found


async def test_layout_at_desktop_width(context: BrowserContext, page: Page, site: Site) -> None:
    # The pause banner's error line starts where the banner's text starts.
    paused = await site.user(funds=30)
    assert (await site.client.post("/api/v1/sync/activate", headers=paused.headers)).status_code == 200
    site.clock.offset += timedelta(days=32)
    await site.client.post("/api/v1/internal/sync/charge-recurring", headers=service_headers())
    await sign_in(page, site, paused, "/app/sync")
    await page.get_by_role("button", name="Wieder aktivieren").click()
    await expect(page.locator("#banner-message")).to_contain_text("Nicht genug Credits")
    text, error = await box(page, "#pause-banner > p"), await box(page, "#banner-message")
    assert abs(error["x"] - text["x"]) < 1, (text, error)  # before: 0 against 144 at 1280 px

    # The package cards fill their row: no empty column beside them.
    await page.goto(f"{site.url}/app")
    await expect(page.locator(".packages li").first).to_be_visible()
    row, last = await box(page, ".packages"), await box(page, ".packages li >> nth=-1")
    assert abs((last["x"] + last["width"]) - (row["x"] + row["width"])) < 2, (row, last)

    # The whole gift link shows in its field.
    giver = await site.user(funds=50)
    await sign_in(page, site, giver, "/app/gifts")
    await page.get_by_label("Credits", exact=True).fill("5")
    await page.get_by_role("button", name="Geschenk erstellen").click()
    await expect(page.locator("#created")).to_be_visible()
    cut = await page.locator("#created-link").evaluate("field => field.scrollWidth > field.clientWidth")
    assert cut is False

    # A gift already redeemed is not shown as a success.
    creator, friend = await site.user(funds=10, name="Ada"), await site.user()
    made = await gift(site, creator, 5)
    assert (await site.client.post(f"/api/v1/gifts/{made['code']}/redeem",
                                   headers=friend.headers)).status_code == 200  # fmt: skip
    await page.goto(f"{site.url}/g/{made['code']}")
    gone = page.locator("#gift-gone")
    await expect(gone).to_be_visible()
    colours = await gone.evaluate("p => [getComputedStyle(p).backgroundColor, getComputedStyle(p).color]")
    success = await page.evaluate(
        "() => { const p = document.createElement('p'); p.className = 'notice'; document.body.append(p);"
        " const s = getComputedStyle(p); return [s.backgroundColor, s.color]; }"
    )
    assert colours[0] != success[0] and colours[1] != success[1], (colours, success)


# ---- one language (issue #27 item 6) ----

# What the service writes in English into rows and packages: none of it may show on a German page.
SERVICE_ENGLISH = [
    "Gift of", "Gift from", "Gift cancelled", "Gift expired", "Cloud Sync (monthly)", "Purchase of",
    "credits — ", "% off", "community",
]  # fmt: skip


def foreign_words(lang: str) -> list[str]:
    """The other language's page texts that this language says differently (long enough to be words)."""
    own, other = i18n.texts(lang), i18n.texts("en" if lang == "de" else "de")
    words = {own[key] for key in own}
    found = []
    for key, text in other.items():
        literal = re.split(r"\{\w+\}", text)[0].strip()
        if text != own[key] and len(literal) >= 8 and literal not in words and not key.startswith("switch_"):
            found.append(literal)
    return found + (SERVICE_ENGLISH if lang == "de" else [])


async def test_every_page_speaks_one_language(
    context: BrowserContext, page: Page, site: Site, web_database: str
) -> None:
    user = await site.user(funds=1000, name="Mara")
    await site.use(user, 12, "chat")
    friend = await site.user(funds=300, name="Jonas")
    received = await gift(site, friend, 150, message="Danke!")
    assert (await site.client.post(f"/api/v1/gifts/{received['code']}/redeem",
                                   headers=user.headers)).status_code == 200  # fmt: skip
    await gift(site, user, 200)
    cancelled = await gift(site, user, 20)
    assert (
        await site.client.delete(f"/api/v1/gifts/{cancelled['id']}", headers=user.headers)
    ).status_code == 200
    assert (await site.client.post("/api/v1/sync/activate", headers=user.headers)).status_code == 200
    grant = {"userId": user.id, "amount": 5, "reason": "Feedback", "referenceId": str(uuid.uuid4())}
    no_app = {"X-Service-Key": service_headers()["X-Service-Key"]}  # booked to the default app, community
    assert (await site.client.post("/api/v1/internal/credits/grant", json=grant,
                                   headers=no_app)).status_code == 200  # fmt: skip
    conn = await connect(web_database)
    try:  # a completed purchase's row, as the webhook writes it
        await ledger.credit(conn, user.id, 500, type=TxType.PURCHASE, app_id="mana-credits",
                            description="Purchase of 500 credits (Basic)",
                            metadata={"purchaseId": str(uuid.uuid4())})  # fmt: skip
    finally:
        await conn.close()

    await sign_in(page, site, user)
    pages = ["/app", "/app/sync", "/app/gifts", f"/g/{received['code']}", "/app/sign-in"]
    for lang in ("de", "en"):
        await context.add_cookies([{"name": "mana_lang", "value": lang, "url": site.url}])
        for path in pages:
            await page.goto(f"{site.url}{path}")
            await expect(page.locator("html")).to_have_attribute("lang", lang)
            if path == "/app":
                await expect(page.locator("#history li").first).to_be_visible()
                await expect(page.locator("#package-list li").first).to_be_visible()
            await page.wait_for_load_state("networkidle")
            text = await page.locator("body").inner_text()
            shown = [word for word in foreign_words(lang) if word in text]
            assert shown == [], (lang, path, shown)
        if lang == "de":
            await page.goto(f"{site.url}/app")
            await expect(page.locator("#history")).to_contain_text("Geschenk über 200 Credits")
            await expect(page.locator("#history")).to_contain_text("Geschenk von Jonas")
            await expect(page.locator("#history")).to_contain_text("Geschenk storniert")
            await expect(page.locator("#history")).to_contain_text("Cloud Sync (Monatlich)")
            await expect(page.locator("#history")).to_contain_text("Kauf von 500 Credits")
            await expect(page.locator("#history")).to_contain_text("Mana-Community")
            await expect(page.locator("#package-list")).to_contain_text("10 % günstiger")
            # Free text a caller sent stays as it was sent.
            await expect(page.locator("#history")).to_contain_text("chat work")


# ---- language, and a screenshot of every page ----


async def test_language_toggle(page: Page, site: Site) -> None:
    user = await site.user(funds=5)
    await sign_in(page, site, user, "/app/sync")

    await page.get_by_role("link", name="Switch to English").click()

    await page.wait_for_url(f"{site.url}/app/sync")
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await expect(page.locator("#sync-state")).to_have_text("Not active")
    await page.get_by_role("link", name="Credits", exact=True).click()
    await expect(page.get_by_role("heading", name="Usage in the last 30 days")).to_be_visible()
    await page.get_by_role("link", name="Auf Deutsch wechseln").click()
    await expect(page.locator("html")).to_have_attribute("lang", "de")


async def test_screenshots_of_every_page(
    context: BrowserContext, page: Page, site: Site, sso_site: Site, web_database: str
) -> None:
    """Not an assertion of looks: pictures at phone and desktop width to look at (tests/web/screenshots)."""
    user = await site.user(funds=2000, name="Mara Beispiel", email="mara@example.com")
    for app, amount in [("chat", 12), ("chat", 30), ("picture", 25), ("research", 60)]:
        await site.use(user, amount, app)
    conn = await asyncpg.connect(web_database)
    try:
        await conn.executemany(
            "INSERT INTO credits.usage_stats (user_id, app_id, credits_used, date) "
            "VALUES ($1, $2, $3, date_trunc('day', now() - make_interval(days => $4), 'Europe/Berlin'))",
            [
                (user.id, app, (days * 7) % 40 + 3, days)
                for days in range(1, 29, 2)
                for app in ("chat", "picture")
            ]
            + [(user.id, "research", 45, 6), (user.id, "research", 80, 13)],
        )
    finally:
        await conn.close()
    friend = await site.user(funds=300, name="Jonas")
    received = await gift(site, friend, 150, message="Danke fürs Umziehen helfen!")
    response = await site.client.post(f"/api/v1/gifts/{received['code']}/redeem", headers=user.headers)
    assert response.status_code == 200
    await gift(site, user, 200, message="Alles Gute zum Geburtstag!", expirationDays=30)
    await gift(site, user, 50, type="personalized", targetEmail="oma@example.com")
    active_sync = await site.client.post(
        "/api/v1/sync/activate", json={"interval": "quarterly"}, headers=user.headers
    )
    assert active_sync.status_code == 200

    await page.goto(f"{site.url}/app/sign-in")
    await shoot(page, "sign-in-dev")
    sso = await context.new_page()
    await sso.goto(f"{sso_site.url}/app/sign-in")
    await shoot(sso, "sign-in-production")
    await sso.close()
    await sign_in(page, site, user)
    await shoot(page, "credits")
    await page.goto(f"{site.url}/app/sync")
    await expect(page.locator("#sync-state")).to_have_text("Aktiv")
    await shoot(page, "sync-active")
    await page.goto(f"{site.url}/app/gifts")
    await page.get_by_label("Credits", exact=True).fill("99999")
    await page.get_by_role("button", name="Geschenk erstellen").click()
    await expect(page.locator("#totalCredits-error")).to_be_visible()
    await shoot(page, "gifts-with-error")
    await page.get_by_label("Credits", exact=True).fill("25")
    await page.get_by_role("button", name="Geschenk erstellen").click()
    await expect(page.locator("#created")).to_be_visible()
    await shoot(page, "gifts")
    purchase = await site.client.post(
        "/api/v1/credits/purchase",
        json={"packageId": (await site.client.get("/api/v1/credits/packages")).json()[1]["id"],
              "successUrl": f"{site.url}/app/purchase/{{PURCHASE_ID}}"},
        headers=user.headers,
    )  # fmt: skip
    await page.goto(f"{site.url}/app/purchase/{purchase.json()['purchaseId']}")
    await expect(page.locator("#purchase-state")).to_have_attribute("data-status", "pending")
    await shoot(page, "purchase-pending")

    # Paused: the banner on every page.
    paused = await site.user(funds=30, name="Paula Pause")
    assert (await site.client.post("/api/v1/sync/activate", headers=paused.headers)).status_code == 200
    site.clock.offset += timedelta(days=32)
    await site.client.post("/api/v1/internal/sync/charge-recurring", headers=service_headers())
    await page.evaluate("localStorage.clear()")
    await sign_in(page, site, paused, "/app/sync")
    await expect(page.locator("#pause-banner")).to_be_visible()
    await expect(page.locator("#sync-state")).to_have_text("Pausiert – zu wenig Credits")
    await shoot(page, "sync-paused")
    await page.goto(f"{site.url}/app")
    await expect(page.locator("#pause-banner")).to_be_visible()
    await shoot(page, "credits-paused-empty")

    anonymous = await context.browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")  # type: ignore[union-attr]
    public = await anonymous.new_page()
    await public.goto(
        f"{site.url}/g/{(await gift(site, friend, 75, message='Für deinen ersten Bildauftrag'))['code']}"
    )
    await expect(public.locator("#gift-amount")).to_have_text("75 credits")
    await shoot(public, "public-gift-en")
    await anonymous.close()
