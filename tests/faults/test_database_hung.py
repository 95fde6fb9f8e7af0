"""PostgreSQL hung (it stops answering without closing anything) under load, against the real served
process: requests get a 503 `service_unavailable` bounded by the connect and statement timeouts (never a
hang or a 500), `/ready` is 503, `/health` 200; once it answers again the same process recovers and the
ledger audit is clean. (A stopped database: test_database_outage.py.)"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from mana_credits.config import DEV_SERVICE_KEY
from mana_credits.db.embedded import database_url
from mana_credits.ledger.audit import audit
from tests.faults.conftest import FreezingProxy, OwnPostgres, running

pytestmark = pytest.mark.slow

HEADERS = {"X-Service-Key": DEV_SERVICE_KEY, "X-App-Id": "faults"}
# The client gives up long after the service's own bounds (5 s connect, 30 s a statement, and a request
# may first wait for a connection that is itself stuck that long): a timeout here is a hang.
CLIENT_TIMEOUT = 150


def _grant(user: str) -> dict[str, object]:
    return {"userId": user, "amount": 5, "reason": "load", "referenceId": str(uuid.uuid4())}


async def _load(client: httpx.AsyncClient, users: list[str], rounds: int) -> list[int]:
    statuses = []
    for _ in range(rounds):
        responses = await asyncio.gather(
            *(client.post("/api/v1/internal/credits/grant", json=_grant(u), headers=HEADERS) for u in users),
            *(client.get(f"/api/v1/internal/credits/balance/{u}", headers=HEADERS) for u in users),
        )
        statuses += [r.status_code for r in responses]
        for r in responses:
            if r.status_code == 503:
                assert r.json()["code"] == "service_unavailable"
    return statuses


async def _until_healthy(client: httpx.AsyncClient) -> None:
    for _ in range(300):
        if (await client.get("/ready")).status_code == 200:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("never ready again")


async def _audit(url: str) -> list[object]:
    conn = await asyncpg.connect(url)
    try:
        return list(await audit(conn))
    finally:
        await conn.close()


async def test_database_hung_under_load(own_postgres: tuple[OwnPostgres, Path], proxy: FreezingProxy) -> None:
    pg, folder = own_postgres
    users = [f"hang-{n}" for n in range(5)]
    async with (
        running(proxy.url("faults"), folder / "data") as server,
        httpx.AsyncClient(base_url=server.base, timeout=CLIENT_TIMEOUT) as client,
    ):
        assert set(await _load(client, users, 1)) == {200}
        proxy.freeze()
        statuses = await _load(client, users, 1)
        assert set(statuses) <= {200, 503} and 503 in statuses
        assert (await client.get("/ready")).status_code == 503
        assert (await client.get("/health")).status_code == 200
        proxy.thaw()
        await _until_healthy(client)
        assert set(await _load(client, users, 1)) == {200}
    assert await _audit(database_url(pg.admin_url, "faults")) == []
