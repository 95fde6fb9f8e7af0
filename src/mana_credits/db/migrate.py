"""Run the Alembic migrations programmatically (`mana-credits migrate`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

from alembic import command, op
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str, revision: str = "head") -> None:
    await asyncio.to_thread(upgrade, database_url, revision)


async def writable(database_url: str) -> bool:
    """Whether the database takes writes: not a standby, not read-only (`migrate` must not succeed there
    without having written anything)."""
    from mana_credits.db.pool import WRITABLE, connect

    conn = await connect(database_url)
    try:
        return bool(await conn.fetchval(WRITABLE))
    finally:
        await conn.close()


def execute_all(statements: Iterable[str]) -> None:
    """Inside a migration: run plain SQL statements in order."""
    for statement in statements:
        op.execute(statement)
