"""Issue 24 §3.4: balance reads and the internal sync status stay up while the primary is away.

The "standby" here is another database holding other rows, so each answer shows where it came from; the
real thing (a streaming standby of a Patroni cluster, and the staleness check on it) runs in tests/ha."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest

from mana_credits import ledger
from mana_credits.app import create_app
from mana_credits.db.embedded import database_url, ensure_database
from mana_credits.db.migrate import upgrade_async
from mana_credits.db.pool import connect
from mana_credits.ledger.schemas import TxType
from tests.conftest import LiveServer, make_settings
from tests.faults.conftest import FreezingProxy, OwnPostgres
from tests.support import Api, JwksServer, service_headers

pytestmark = pytest.mark.slow


async def _grant(url: str, user: str, amount: int) -> None:
    conn = await connect(url)
    try:
        await ledger.credit(conn, user, amount, type=TxType.GRANT, app_id="t", description="seed")
    finally:
        await conn.close()


async def test_reads_are_answered_by_the_standby_while_the_primary_is_away(
    own_postgres: tuple[OwnPostgres, Path], proxy: FreezingProxy, jwks: JwksServer, api: Api
) -> None:
    pg, _ = own_postgres
    await ensure_database(pg.admin_url, "standby")
    standby = database_url(pg.admin_url, "standby")
    for url in (proxy.url("faults"), standby):
        await upgrade_async(url)
    user = api.actor()
    await _grant(proxy.url("faults"), user.id, 5)
    await _grant(standby, user.id, 7)
    settings = make_settings(proxy.url("faults"), jwks, DATABASE_STANDBY_URL=standby, DB_POOL_SIZE=4)
    server = LiveServer(create_app(settings))
    base = await server.start()
    try:
        async with httpx.AsyncClient(base_url=base, timeout=40) as client:

            async def reads() -> tuple[int, int, int]:
                internal = await client.get(f"/api/v1/internal/credits/balance/{user.id}",
                                            headers=service_headers())  # fmt: skip
                own = await client.get("/api/v1/credits/balance", headers=user.headers)
                sync = await client.get(f"/api/v1/internal/sync/status/{user.id}", headers=service_headers())
                assert sync.status_code == 200 and sync.json()["active"] is False, sync.text
                assert internal.status_code == own.status_code == 200, (internal.text, own.text)
                return internal.json()["balance"], own.json()["balance"], sync.status_code

            assert await reads() == (5, 5, 200)  # the primary while it answers

            for fault in (proxy.refuse, proxy.freeze):
                fault()
                started = time.monotonic()
                assert await reads() == (7, 7, 200)
                # A frozen primary is given PRIMARY_WAIT (1 s) before the standby answers.
                assert time.monotonic() - started < 5
                grant = {"userId": user.id, "amount": 1, "reason": "t", "referenceId": str(uuid.uuid4())}
                write = await client.post("/api/v1/internal/credits/grant", json=grant,
                                          headers=service_headers())  # fmt: skip
                assert write.status_code == 503 and write.json()["code"] == "service_unavailable"
                proxy.thaw()
                await asyncio.sleep(1.1)  # the primary is skipped for a second after it failed
                for _ in range(100):
                    if await reads() == (5, 5, 200):
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("reads never went back to the primary")
    finally:
        await server.stop()


async def test_without_a_standby_reads_fail_like_writes(proxy: FreezingProxy, jwks: JwksServer) -> None:
    await upgrade_async(proxy.url("faults"))
    server = LiveServer(create_app(make_settings(proxy.url("faults"), jwks, DB_POOL_SIZE=2)))
    base = await server.start()
    try:
        async with httpx.AsyncClient(base_url=base, timeout=40) as client:
            proxy.refuse()
            read = await client.get("/api/v1/internal/credits/balance/someone", headers=service_headers())
            assert read.status_code == 503 and read.json()["code"] == "service_unavailable"
    finally:
        await server.stop()
