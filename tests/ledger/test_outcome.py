"""ledger.outcome finds out what happened to a debit whose session was cut, whatever the database answers
while it asks: found by `make test-ha` (a planned switchover), where the lookup's connect met only
standbys for a moment; `TargetServerAttributeNotMatched` escaped the lookup, and a debit committed on
the old primary was answered "503 retry shortly"."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import asyncpg

from mana_credits import ledger
from mana_credits.db.pool import create_pool
from mana_credits.ledger.outcome import settle
from mana_credits.ledger.schemas import TxType


async def test_the_lookup_waits_out_a_moment_without_a_writable_server(
    fresh_database: Callable[[], Awaitable[str]], pg_admin_url: str
) -> None:
    url = await fresh_database()
    name = urlsplit(url).path.lstrip("/")
    separator = "&" if "?" in url else "?"
    pool = await create_pool(f"{url}{separator}target_session_attrs=read-write", size=2)
    admin = await asyncpg.connect(pg_admin_url)
    try:
        conn = await pool.acquire()
        pid = conn.get_server_pid()
        entry = await ledger.credit(conn, "cut-user", 5, type=TxType.GRANT, app_id="t", description="done")
        # The session is cut after its COMMIT; for the next second new sessions are read-only (a
        # standby), as between a primary's shutdown and its successor's promotion.
        await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')

        async def promote() -> None:
            await asyncio.sleep(1)
            await admin.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')

        promoting = asyncio.create_task(promote())
        found, gone = await settle(pool, conn, pid, [entry.transaction.id])
        await promoting
    finally:
        await admin.close()
        await pool.close()
    assert gone and list(found) == [entry.transaction.id]
    assert found[entry.transaction.id].balance == 5
