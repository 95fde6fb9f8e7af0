"""Alembic environment: SQLAlchemy only carries the connection; migrations are plain SQL."""

from __future__ import annotations

import asyncio

import asyncpg
from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from mana_credits.db import locks

url = context.config.attributes.get("database_url") or context.config.get_main_option("sqlalchemy.url")


def _run(connection: Connection) -> None:
    # One transaction per migration: enum values added by one (ALTER TYPE … ADD VALUE) are usable in the next.
    context.configure(
        connection=connection,
        version_table_schema="public",
        transactional_ddl=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    # Replicas starting together each migrate: the first holds this lock (on a connection of its own, so
    # it spans every migration's transaction) while it migrates; the others wait, then find the schema
    # at head and do nothing. Closing the connection releases the lock.
    lock = await asyncpg.connect(url)
    try:
        await locks.session_lock(lock, locks.MIGRATE)
        # asyncpg parses every DATABASE_URL form the old service accepted, Unix sockets included.
        engine = create_async_engine("postgresql+asyncpg://", async_creator=lambda: asyncpg.connect(url))
        async with engine.connect() as conn:
            await conn.run_sync(_run)
        await engine.dispose()
    finally:
        await lock.close()


asyncio.run(_main())
