"""Background jobs of this domain (see kit.jobs): renew due subscriptions every
SYNC_BILLING_INTERVAL_SECONDS. Replicas may all run it; claims keep each period charged once.
0 switches it off where an external cron calls POST /internal/sync/charge-recurring instead."""

from __future__ import annotations

from mana_credits.context import AppContext
from mana_credits.kit.jobs import Job
from mana_credits.sync_billing import service
from mana_credits.sync_billing.schemas import RenewalResult


def jobs(ctx: AppContext) -> list[Job]:
    async def renew() -> RenewalResult:
        return await service.charge_recurring(
            ctx.pool, ctx.clock.now(), resume=service.resume_url(ctx.settings.WEB_APP_URL)
        )

    interval = ctx.settings.SYNC_BILLING_INTERVAL_SECONDS
    return [Job("sync-renewal", interval, renew)] if interval > 0 else []
