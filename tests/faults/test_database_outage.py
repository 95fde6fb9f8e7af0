"""PostgreSQL goes away for a few seconds under write load: callers get a fast 503 `service_unavailable`
(never a hang, never a 500), `/ready` says 503 while `/health` stays 200, and once the database is back the
same process serves again without a restart, with every 2xx in the ledger exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import asyncpg
import httpx
import pytest

from mana_credits.app import create_app
from mana_credits.db.migrate import upgrade_async
from mana_credits.ledger.audit import audit
from tests.conftest import LiveServer, make_settings
from tests.faults.conftest import OwnPostgres
from tests.support import JwksServer, service_headers

USERS = 20


@pytest.fixture
async def outage(own_postgres: tuple[OwnPostgres, Path]) -> OwnPostgres:
    pg, _ = own_postgres
    await upgrade_async(pg.admin_url)
    return pg


async def test_a_database_outage_is_a_fast_503_and_the_service_recovers(
    outage: OwnPostgres, jwks: JwksServer
) -> None:
    server = LiveServer(create_app(make_settings(outage.admin_url, jwks, DB_POOL_SIZE=4)))
    base = await server.start()
    answers: Counter[int] = Counter()
    bodies: list[dict[str, object]] = []
    succeeded: list[str] = []
    unanswered: list[tuple[str, str]] = []  # (user, key) of each 503
    stop = asyncio.Event()
    try:
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:
            users = [f"outage-{uuid.uuid4()}" for _ in range(USERS)]
            for user in users:
                grant = {"userId": user, "amount": 1000, "reason": "t", "referenceId": f"fund-{user}"}
                assert (await client.post("/api/v1/internal/credits/grant", json=grant,
                                          headers=service_headers())).status_code == 200  # fmt: skip

            async def debits(user: str) -> None:
                n = 0
                while not stop.is_set():
                    key = f"{user}-{n}"
                    n += 1
                    response = await client.post(
                        "/api/v1/internal/credits/use",
                        json={"userId": user, "amount": 1, "appId": "chat", "description": "load"},
                        headers={**service_headers("chat"), "Idempotency-Key": key},
                    )
                    answers[response.status_code] += 1
                    if response.status_code == 200:
                        succeeded.append(key)
                    elif response.status_code != 402:
                        bodies.append(response.json())
                        unanswered.append((user, key))
                        await asyncio.sleep(0.05)

            load = [asyncio.create_task(debits(user)) for user in users]
            await asyncio.sleep(1)
            await asyncio.to_thread(outage.stop)
            await asyncio.sleep(2)
            assert (await client.get("/ready")).status_code == 503
            assert (await client.get("/health")).status_code == 200
            await asyncio.to_thread(outage.start)
            # Back without a restart: wait (bounded) until the service is ready and writes succeed again.
            for _ in range(100):
                if (await client.get("/ready")).status_code == 200:
                    break
                await asyncio.sleep(0.2)
            before = len(succeeded)
            for _ in range(100):
                await asyncio.sleep(0.2)
                if len(succeeded) > before + USERS:
                    break
            stop.set()
            await asyncio.gather(*load)
            # A 503 can be the lost answer of a commit that happened (the connection died after COMMIT):
            # the caller retries with its key and gets that effect, never a second one.
            for user, key in unanswered:
                retry = await client.post(
                    "/api/v1/internal/credits/use",
                    json={"userId": user, "amount": 1, "appId": "chat", "description": "load"},
                    headers={**service_headers("chat"), "Idempotency-Key": key},
                )
                assert retry.status_code == 200, retry.text
                succeeded.append(key)
    finally:
        await server.stop()

    assert set(answers) <= {200, 402, 503}, answers
    assert answers[503] > 0 and len(succeeded) > before + USERS, answers
    assert {body["code"] for body in bodies} == {"service_unavailable"}
    conn = await asyncpg.connect(outage.admin_url)
    try:
        assert await audit(conn) == []
        rows = await conn.fetch(
            "SELECT idempotency_key, count(*) AS n FROM credits.transactions WHERE type = 'usage' "
            "GROUP BY idempotency_key"
        )
    finally:
        await conn.close()
    # Every 2xx has its ledger row, each key charged exactly once, nothing else charged.
    assert {row["idempotency_key"]: row["n"] for row in rows} == dict.fromkeys(succeeded, 1)
