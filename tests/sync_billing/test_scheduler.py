"""The in-process scheduler renews due subscriptions on its own (no trigger call)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from mana_credits import ledger
from mana_credits.app import create_app
from mana_credits.db.pool import create_pool
from mana_credits.kit.clock import Clock
from mana_credits.ledger.schemas import TxType
from tests.conftest import LiveServer, make_settings
from tests.support import JwksServer


async def test_scheduler_renews_due_subscriptions(
    fresh_database: Callable[[], Awaitable[str]], jwks: JwksServer
) -> None:
    url = await fresh_database()
    pool = await create_pool(url, size=1)
    server = LiveServer(
        create_app(
            make_settings(url, jwks, MANA_CREDITS_SCHEDULER=True, SYNC_BILLING_INTERVAL_SECONDS=1),
            clock=Clock(),
        )
    )
    try:
        async with pool.acquire() as conn:
            await ledger.credit(
                conn, "sched-user", 100, type=TxType.GRANT, app_id="tests", description="seed"
            )
            await conn.execute(
                "INSERT INTO credits.sync_subscriptions (user_id, active, next_charge_at, anchor_day) "
                "VALUES ('sched-user', true, $1, 3)",
                datetime(2026, 1, 3, tzinfo=UTC),
            )
        await server.start()
        async with pool.acquire() as conn:
            for _ in range(200):
                balance = await conn.fetchval(
                    "SELECT balance FROM credits.balances WHERE user_id = 'sched-user'"
                )
                if balance != 100:
                    break
                await asyncio.sleep(0.05)
            # Later runs (every second) find nothing due: one charge only.
            await asyncio.sleep(1.5)
            assert (
                await conn.fetchval("SELECT balance FROM credits.balances WHERE user_id = 'sched-user'") == 70
            )
            due = await conn.fetchval(
                "SELECT next_charge_at FROM credits.sync_subscriptions WHERE user_id = 'sched-user'"
            )
            assert due > datetime.now(UTC)
    finally:
        await server.stop()
        await pool.close()
