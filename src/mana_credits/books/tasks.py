"""Background jobs of the books (see kit.jobs): the Stripe reconciliation, daily by default.

One replica reconciles at a time (a try-lock: the others skip that round). It reads the last
STRIPE_RECONCILE_DAYS from Stripe, applies what lost webhooks missed (STRIPE_RECONCILE_FIX), exports the
discrepancies (`mana_credits_stripe_discrepancies`) and logs each one; `mana-credits stripe reconcile`
does the same by hand.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from mana_credits.books import reconcile
from mana_credits.context import AppContext
from mana_credits.db import locks
from mana_credits.kit.jobs import Job
from mana_credits.payments.stripe_client import gateway

log = logging.getLogger("mana_credits.books")


def jobs(ctx: AppContext) -> list[Job]:
    settings = ctx.settings
    if not settings.STRIPE_SECRET_KEY or not settings.STRIPE_RECONCILE_INTERVAL_SECONDS:
        return []

    async def run() -> int | None:
        since = ctx.clock.now() - timedelta(days=settings.STRIPE_RECONCILE_DAYS)
        async with ctx.pool.acquire() as conn:
            if not await locks.session_try_lock(conn, locks.STRIPE_RECONCILE):
                return None
            try:
                report = await reconcile.reconcile(
                    conn, gateway(ctx), since, fix=settings.STRIPE_RECONCILE_FIX
                )
            finally:
                await locks.session_unlock(conn, locks.STRIPE_RECONCILE)
        for finding in report.findings:
            (log.info if finding.fixed else log.error)(
                "stripe reconcile: %s%s: %s (purchase %s, user %s) %s", reconcile.KINDS[finding.kind],
                " (fixed)" if finding.fixed else "", finding.stripe_id, finding.purchase_id, finding.user_id,
                finding.detail,
            )  # fmt: skip
        return len(report.open)

    return [Job("stripe.reconcile", float(settings.STRIPE_RECONCILE_INTERVAL_SECONDS), run)]
