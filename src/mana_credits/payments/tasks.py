"""Background jobs of this domain (see kit.jobs): forget old processed Stripe event ids.

Stripe redelivers an event for at most three days; after 90 days an id can only come back through a
manual resend, and even then the purchase claim and the refund totals make it change nothing.
"""

from __future__ import annotations

from datetime import timedelta

from mana_credits.context import AppContext
from mana_credits.kit.jobs import Job
from mana_credits.payments import repository

EVENT_RETENTION = timedelta(days=90)
PRUNE_INTERVAL_SECONDS = 24 * 3600.0


async def prune_events(ctx: AppContext) -> int:
    async with ctx.pool.acquire() as conn:
        return await repository.prune_events(conn, ctx.clock.now() - EVENT_RETENTION)


def jobs(ctx: AppContext) -> list[Job]:
    return [Job("stripe-events-prune", PRUNE_INTERVAL_SECONDS, lambda: prune_events(ctx))]
