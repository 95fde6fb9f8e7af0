"""`mana-credits billing run` as an operator runs it: a real process against a real database."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from mana_credits import ledger
from mana_credits.db.pool import create_pool
from mana_credits.ledger.schemas import TxType

CLI = Path(sys.executable).parent / "mana-credits"


async def test_billing_run_renews_due_subscriptions(fresh_database: Callable[[], Awaitable[str]]) -> None:
    url = await fresh_database()
    pool = await create_pool(url, size=1)
    try:
        async with pool.acquire() as conn:
            for user_id, credits in (("cli-rich", 100), ("cli-poor", 5)):
                await ledger.credit(
                    conn, user_id, credits, type=TxType.GRANT, app_id="tests", description="seed"
                )
            await conn.execute(
                """
                INSERT INTO credits.sync_subscriptions (user_id, active, next_charge_at, anchor_day)
                VALUES ('cli-rich', true, $1, 1), ('cli-poor', true, $1, 1)
                """,
                datetime(2025, 1, 1, tzinfo=UTC),
            )
        env = {**os.environ, "DATABASE_URL": url, "MANA_CREDITS_ENV": "development"}
        process = await asyncio.create_subprocess_exec(
            str(CLI), "billing", "run", "--no-notify", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await process.communicate()
        assert process.returncode == 0, (out + err).decode()
        assert "1 charged" in err.decode()
        assert "1 paused" in err.decode()
        async with pool.acquire() as conn:
            balance = await conn.fetchval("SELECT balance FROM credits.balances WHERE user_id = 'cli-rich'")
            assert balance == 70
            paused = await conn.fetchval(
                "SELECT paused_at IS NOT NULL FROM credits.sync_subscriptions WHERE user_id = 'cli-poor'"
            )
            assert paused is True
    finally:
        await pool.close()
