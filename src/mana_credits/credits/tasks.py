"""Background jobs of this domain (see kit.jobs): releasing expired holds, forgetting old request keys."""

from __future__ import annotations

from mana_credits.context import AppContext
from mana_credits.credits import holds
from mana_credits.kit import idempotency, money_metrics
from mana_credits.kit.jobs import Job

HOLD_SWEEP_SECONDS = 30.0
KEY_PURGE_SECONDS = 3600.0


def jobs(ctx: AppContext) -> list[Job]:
    async def sweep() -> int:
        released = await holds.sweep_expired(ctx.pool, ctx.clock.now())
        money_metrics.HOLDS_EXPIRED.inc(released)
        return released

    async def purge_keys() -> int:
        return await idempotency.purge(ctx.pool, ctx.clock.now())

    return [
        Job(name="holds.expiry", interval_seconds=HOLD_SWEEP_SECONDS, run=sweep),
        Job(name="idempotency.purge", interval_seconds=KEY_PURGE_SECONDS, run=purge_keys),
    ]
