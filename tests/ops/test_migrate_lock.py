"""Replicas starting together each migrate: an advisory lock lets one run the migrations, the rest wait."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from mana_credits.db.embedded import database_url
from tests.test_cli import run_cli


@pytest.fixture
async def empty_database(pg_admin_url: str) -> AsyncIterator[str]:
    name = f"empty_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(pg_admin_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(pg_admin_url, name)
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def test_concurrent_migrations_on_a_fresh_database(empty_database: str) -> None:
    env = {"DATABASE_URL": empty_database}
    results = await asyncio.gather(*(run_cli("migrate", env=env) for _ in range(2)))
    for code, out in results:
        assert code == 0, out
    conn = await asyncpg.connect(empty_database)
    try:
        versions = await conn.fetch("SELECT version_num FROM public.alembic_version")
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'credits'"
        )
    finally:
        await conn.close()
    assert len(versions) == 1
    assert tables > 5
