"""A committed debit is never answered "not done" (issue #23 item 7): PostgreSQL backends running debits are
killed from another session (pg_terminate_backend) in the middle of batches under parallel keyless debits,
through the group commit and the single-debit way. Every 200 has its ledger row exactly once; a
`service_unavailable` 503 (retry advised) only for a debit with no row; where the outcome could not be
told, `outcome_unknown` without Retry-After; the audit is clean."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from mana_credits.app import create_app
from mana_credits.db.migrate import upgrade_async
from mana_credits.ledger.audit import audit
from tests.conftest import LiveServer, make_settings
from tests.faults.conftest import OwnPostgres
from tests.support import JwksServer, service_headers

USERS = 12
CALLERS = 48
KILL_SECONDS = 4.0

# The service's sessions in the middle of a debit: a group commit's batch or a single debit (the start of
# their text: pg_stat_activity keeps the first 1 kB of a statement).
_KILL = """
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE application_name = 'mana-credits' AND state = 'active'
  AND (query LIKE '%WITH RECURSIVE seq%' OR query LIKE '%UPDATE credits.balances%')
"""


@pytest.fixture
async def database(own_postgres: tuple[OwnPostgres, Path]) -> OwnPostgres:
    pg, _ = own_postgres
    await upgrade_async(pg.admin_url)
    return pg


async def load_with_kills(base: str, users: list[str], killer: asyncpg.Connection) -> dict[str, Any]:
    """Keyless debits from CALLERS callers while debits' backends are killed for KILL_SECONDS."""
    answers: dict[str, httpx.Response] = {}
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=CALLERS, max_keepalive_connections=CALLERS)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

        async def caller(n: int) -> None:
            i = 0
            while not stop.is_set():
                description = f"{base}-{n}-{i}"
                i += 1
                body = {
                    "userId": users[(n + i) % USERS],
                    "amount": 1,
                    "appId": "chat",
                    "description": description,
                }
                answers[description] = await client.post(
                    "/api/v1/internal/credits/use", json=body, headers=service_headers("chat")
                )

        callers = [asyncio.create_task(caller(n)) for n in range(CALLERS)]
        killed, loop = 0, asyncio.get_running_loop()
        await asyncio.sleep(0.5)
        until = loop.time() + KILL_SECONDS
        while loop.time() < until:
            killed += await killer.fetchval(_KILL)
            await asyncio.sleep(0.01)
        await asyncio.sleep(1.0)  # the service recovers: the last debits go through
        stop.set()
        await asyncio.gather(*callers)
    return {"answers": answers, "killed": killed}


async def test_no_caller_is_told_not_done_for_a_debit_in_the_ledger(
    database: OwnPostgres, jwks: JwksServer
) -> None:
    settings = make_settings(database.admin_url, jwks, DB_POOL_SIZE=6)
    grouped = LiveServer(create_app(settings))
    single = LiveServer(create_app(settings.model_copy(update={"GROUP_COMMIT": False})))
    bases = [await grouped.start(), await single.start()]
    killer = await asyncpg.connect(database.admin_url)
    results: list[dict[str, Any]] = []
    try:
        users = [f"lost-{uuid.uuid4()}" for _ in range(USERS)]
        async with httpx.AsyncClient(base_url=bases[0], timeout=30) as client:
            for user in users:
                grant = {"userId": user, "amount": 1_000_000, "reason": "t", "referenceId": f"fund-{user}"}
                response = await client.post(
                    "/api/v1/internal/credits/grant", json=grant, headers=service_headers()
                )
                assert response.status_code == 200
        for base in bases:
            results.append(await load_with_kills(base, users, killer))
        rows = await killer.fetch(
            "SELECT description, min(id::text) AS id, count(*) AS n FROM credits.transactions "
            "WHERE type = 'usage' GROUP BY description"
        )
        assert await audit(killer) == []
    finally:
        await killer.close()
        await single.stop()
        await grouped.stop()

    written = {row["description"]: (row["id"], row["n"]) for row in rows}
    for result in results:
        answers: dict[str, httpx.Response] = result["answers"]
        codes = Counter(r.json()["code"] if r.status_code != 200 else "ok" for r in answers.values())
        assert result["killed"] > 0, result["killed"]
        assert set(codes) <= {"ok", "service_unavailable", "outcome_unknown"}, codes
        assert codes["ok"] > 0 and codes["service_unavailable"] + codes["outcome_unknown"] > 0, codes
        for description, response in answers.items():
            if response.status_code == 200:
                assert written.get(description) == (response.json()["transaction"]["id"], 1), description
            elif response.json()["code"] == "service_unavailable":
                assert description not in written, f"{description} is in the ledger but was answered 503"
                assert response.headers["retry-after"] == "2"
            else:
                assert response.status_code == 503 and "retry-after" not in response.headers
    # Nothing written that nobody asked for.
    assert set(written) <= {d for result in results for d in result["answers"]}
