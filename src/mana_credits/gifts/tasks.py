"""The expiry sweep: refund expired, unredeemed gifts to their creators (scheduler job, CLI, internal route).

Refunds use the ledger type `expiry` (positive), so a creator's history tells an expired gift's return
apart from a cancellation (`gift`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import asyncpg

from mana_credits.context import AppContext
from mana_credits.gifts import ratelimit, service
from mana_credits.gifts.schemas import SweepResult
from mana_credits.kit.jobs import Job

SWEEP_INTERVAL_SECONDS = 300.0


async def sweep(
    pool: asyncpg.Pool,
    now: datetime,
    batch: int = service.SWEEP_BATCH,
    on_batch: Callable[[int], object] | None = None,
) -> SweepResult:
    """Expire and refund every due gift, one transaction per batch; safe to run anywhere at once.

    `on_batch` hears how many gifts each batch expired (the CLI's progress bar).
    """
    expired = refunded = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            claimed, gifts = await service.expire_batch(conn, now, batch)
        expired += len(gifts)
        refunded += sum(gift.total_credits for gift in gifts)
        if on_batch is not None:
            on_batch(len(gifts))
        # A full batch of gifts that all failed would come back forever: leave them for the next run.
        if claimed < batch or not gifts:
            break
    await ratelimit.prune(pool, now)
    return SweepResult(expired=expired, refunded_credits=refunded)


def jobs(ctx: AppContext) -> list[Job]:
    return [
        Job(
            name="gifts.expiry_sweep",
            interval_seconds=SWEEP_INTERVAL_SECONDS,
            run=lambda: sweep(ctx.pool, ctx.clock.now()),
        )
    ]
