"""The migrations go all the way down and up again (each step's downgrade undoes its upgrade)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
from alembic import command

from mana_credits.db.migrate import alembic_config, upgrade_async


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT table_schema || '.' || table_name AS name FROM information_schema.tables "
            "WHERE table_schema IN ('credits', 'gifts')"
        )
    finally:
        await conn.close()
    return {row["name"] for row in rows}


async def test_downgrade_to_base_and_upgrade_again(fresh_database: Callable[[], Awaitable[str]]) -> None:
    url = await fresh_database()
    migrated = await _tables(url)
    assert {"credits.balances", "credits.idempotency_keys", "credits.notification_outbox"} <= migrated
    await asyncio.to_thread(command.downgrade, alembic_config(url), "base")
    assert await _tables(url) == set()
    await upgrade_async(url)
    assert await _tables(url) == migrated
