"""One damaged account must not hold back the expiry of everybody else's holds."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from mana_credits import ledger
from mana_credits.credits import holds
from mana_credits.db.pool import create_pool


async def test_sweep_skips_a_user_it_cannot_release_and_releases_the_rest(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    pool = await create_pool(await fresh_database(), size=2)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        async with pool.acquire() as conn:
            for user in ("good", "damaged"):
                await ledger.credit(conn, user, 50, type=ledger.TxType.GRANT, app_id="t", description="g")
                await holds.reserve(
                    conn, user_id=user, amount=20, reason="r", app_id="t", ttl_seconds=60, now=now
                )
            # Damage: the reserved total lost track of the hold (as an adopted row could have).
            await conn.execute(
                "UPDATE credits.balances SET reserved = 0, balance = 50 WHERE user_id = 'damaged'"
            )

        released = await holds.sweep_expired(pool, now + timedelta(minutes=5))

        async with pool.acquire() as conn:
            good = await ledger.get_balance(conn, "good")
            rows = await conn.fetch("SELECT user_id, status::text FROM credits.reservations")
            statuses = {row["user_id"]: row["status"] for row in rows}
        assert released == 1  # the damaged one was claimed, then put back
        assert (good.balance, good.reserved) == (50, 0)
        assert statuses == {"good": "refunded", "damaged": "reserved"}
        # Only the damaged hold left, one per batch: the sweep gives up for this round instead of looping.
        assert await holds.sweep_expired(pool, now + timedelta(minutes=6), batch=1) == 0
    finally:
        await pool.close()
