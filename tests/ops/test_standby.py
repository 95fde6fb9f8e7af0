"""Issue 24 §3.1: a service pointed at a standby (or at a read-only database, which PostgreSQL answers the
same way: SQLSTATE 25006) says so instead of answering 500s while /ready says ready."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from mana_credits.app import create_app
from mana_credits.config import Settings
from tests.conftest import LiveServer, make_settings
from tests.support import JwksServer, service_headers

CLI = str(Path(sys.executable).parent / "mana-credits")


async def read_only(fresh_database: Callable[[], Awaitable[str]], pg_admin_url: str) -> str:
    url = await fresh_database()
    name = urlsplit(url).path.lstrip("/")
    admin = await asyncpg.connect(pg_admin_url)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    finally:
        await admin.close()
    return url


async def test_a_read_only_database_is_503_and_not_ready(
    fresh_database: Callable[[], Awaitable[str]], pg_admin_url: str, jwks: JwksServer
) -> None:
    url = await read_only(fresh_database, pg_admin_url)
    server = LiveServer(create_app(make_settings(url, jwks)))
    base = await server.start()
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            debit = await client.post(
                "/api/v1/internal/credits/grant",
                json={"userId": "u", "amount": 5, "reason": "r", "referenceId": "standby-1"},
                headers=service_headers(),
            )
            assert debit.status_code == 503, debit.text
            assert debit.json()["code"] == "service_unavailable" and debit.headers["retry-after"]
            ready = await client.get("/ready")
            assert ready.status_code == 503 and "read-only" in ready.json()["message"]
    finally:
        await server.stop()


async def test_migrate_refuses_a_read_only_database(
    fresh_database: Callable[[], Awaitable[str]], pg_admin_url: str
) -> None:
    url = await read_only(fresh_database, pg_admin_url)
    process = await asyncio.create_subprocess_exec(
        CLI, "migrate", env={**os.environ, "DATABASE_URL": url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await process.communicate()
    assert process.returncode == 2, out.decode()
    assert "read-only" in out.decode() and "migrations applied" not in out.decode()


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("postgresql://u:p@h1:5432,h2:5432/db", True),
        ("postgresql://u:p@h1:5432,h2:5432/db?target_session_attrs=any", True),
        ("postgresql://u:p@h1:5432,h2:5432/db?target_session_attrs=read-write", False),
        ("postgresql://u:p@h1:5432,h2:5432/db?target_session_attrs=primary", False),
        ("postgresql://u:p@h1:5432/db", False),
        ("postgresql://u:p@/db?host=/a&host=/b", True),
    ],
)
def test_a_multi_host_url_must_ask_for_the_primary(url: str, refused: bool) -> None:
    settings = Settings(DATABASE_URL=url, MANA_CREDITS_ENV="development")
    if refused:
        with pytest.raises(RuntimeError, match="target_session_attrs"):
            settings.check_safe_to_start()
    else:
        settings.check_safe_to_start()


@pytest.mark.parametrize(
    ("url", "standby_setting", "expected"),
    [
        (
            "postgresql://u:p@h1:5432,h2:5432/db?target_session_attrs=read-write&sslmode=disable",
            None,
            "postgresql://u:p@h1:5432,h2:5432/db?target_session_attrs=standby&sslmode=disable",
        ),
        ("postgresql://u:p@h1:5432,h2:5432/db?target_session_attrs=read-write", "off", None),
        ("postgresql://u:p@h1:5432/db", None, None),
        ("postgresql://u:p@h1:5432/db", "postgresql://u:p@h9:5432/db", "postgresql://u:p@h9:5432/db"),
    ],
)
def test_reads_during_a_failover_go_to_the_standbys_of_the_url(
    url: str, standby_setting: str | None, expected: str | None
) -> None:
    settings = Settings(DATABASE_URL=url, DATABASE_STANDBY_URL=standby_setting)
    assert settings.standby_url == expected
