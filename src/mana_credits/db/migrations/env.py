"""Alembic environment: SQLAlchemy only carries the connection; migrations are plain SQL."""

from __future__ import annotations

import asyncio

import asyncpg
from alembic import context
from sqlalchemy import text
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
        # Replicas starting together each migrate: the first runs the migrations, the others wait here,
        # then find the schema at head and do nothing (the lock ends with this one transaction).
        connection.execute(text(locks.xact_lock_sql(":key")), {"key": locks.MIGRATE})
        context.run_migrations()


async def _main() -> None:
    # asyncpg parses every DATABASE_URL form the old service accepted, Unix sockets included.
    engine = create_async_engine("postgresql+asyncpg://", async_creator=lambda: asyncpg.connect(url))
    async with engine.connect() as conn:
        await conn.run_sync(_run)
    await engine.dispose()


asyncio.run(_main())
