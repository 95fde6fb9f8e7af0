"""`mana-credits gifts expire`, run as a real process against its own database."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from mana_credits import ledger
from mana_credits.ledger.audit import audit
from tests.gifts.conftest import make_gift

CLI = str(Path(sys.executable).parent / "mana-credits")


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        CLI, *args, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


async def test_gifts_expire_refunds_expired_gifts(own_url: str, own_pool: asyncpg.Pool) -> None:
    async with own_pool.acquire() as conn:
        for n, total in enumerate((10, 20, 30)):
            await make_gift(conn, f"old-{n}", total, expired=True)
        await make_gift(conn, "fresh", 40, expired=False)

    code, out = await run_cli("gifts", "expire", "--batch", "2", env={"DATABASE_URL": own_url})
    assert code == 0, out
    assert "3 gift(s) expired, 60 credit(s) refunded" in out
    async with own_pool.acquire() as conn:
        for n, total in enumerate((10, 20, 30)):
            assert (await ledger.get_balance(conn, f"old-{n}")).balance == total
        assert (await ledger.get_balance(conn, "fresh")).balance == 0
        assert await audit(conn) == []
    code, out = await run_cli("gifts", "expire", env={"DATABASE_URL": own_url})
    assert code == 0 and "0 gift(s) expired" in out
    # Two days ahead on a development server, the fresh one-day gift expires too; production refuses.
    ahead = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%d")
    code, out = await run_cli("gifts", "expire", "--as-of", ahead, env={"DATABASE_URL": own_url})
    assert code == 2 and "development servers only" in out
    dev = {"DATABASE_URL": own_url, "MANA_CREDITS_ENV": "development"}
    code, out = await run_cli("gifts", "expire", "--as-of", ahead, env=dev)
    assert code == 0 and "1 gift(s) expired, 40 credit(s) refunded" in out, out
    async with own_pool.acquire() as conn:
        assert (await ledger.get_balance(conn, "fresh")).balance == 40
        assert await audit(conn) == []
