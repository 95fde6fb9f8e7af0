"""`mana-credits billing run` as an operator runs it: a real process against a real database."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
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
        assert "1 charged" in out.decode()  # the answer, on stdout
        assert "1 paused" in out.decode()
        async with pool.acquire() as conn:
            balance = await conn.fetchval("SELECT balance FROM credits.balances WHERE user_id = 'cli-rich'")
            assert balance == 70
            paused = await conn.fetchval(
                "SELECT paused_at IS NOT NULL FROM credits.sync_subscriptions WHERE user_id = 'cli-poor'"
            )
            assert paused is True
    finally:
        await pool.close()


async def test_billing_run_as_of_moves_the_clock_in_development_only(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    """A month ahead in minutes: what is due in 30 days renews (or pauses) now; production refuses."""
    url = await fresh_database()
    due = datetime.now(UTC) + timedelta(days=30)
    pool = await create_pool(url, size=1)
    try:
        async with pool.acquire() as conn:
            await ledger.credit(conn, "asof-rich", 100, type=TxType.GRANT, app_id="tests", description="seed")
            await conn.execute(
                "INSERT INTO credits.sync_subscriptions (user_id, active, next_charge_at, anchor_day) "
                "VALUES ('asof-rich', true, $1, 1), ('asof-poor', true, $1, 1)",
                due,
            )

        async def billing(env: str, *args: str) -> tuple[int, str]:
            process = await asyncio.create_subprocess_exec(
                str(CLI), "billing", "run", "--no-notify", *args,
                env={**os.environ, "DATABASE_URL": url, "MANA_CREDITS_ENV": env},
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            out, _ = await process.communicate()
            return process.returncode or 0, out.decode()

        later = (due + timedelta(days=1)).strftime("%Y-%m-%d")
        code, out = await billing("production", "--as-of", later)
        assert code == 2 and "development servers only" in out
        code, out = await billing("development")
        assert code == 0 and "0 charged" in out  # nothing is due today
        code, out = await billing("development", "--as-of", later)
        assert code == 0 and "1 charged" in out and "1 paused" in out, out
        async with pool.acquire() as conn:
            assert await conn.fetchval(
                "SELECT balance FROM credits.balances WHERE user_id = 'asof-rich'"
            ) == 70  # fmt: skip
            paused = await conn.fetchval(
                "SELECT paused_at FROM credits.sync_subscriptions WHERE user_id = 'asof-poor'"
            )
            assert paused is not None and paused.date() == due.date() + timedelta(days=1)
        code, out = await billing("development", "--as-of", later)
        assert code == 0 and "0 charged" in out  # once only
    finally:
        await pool.close()
