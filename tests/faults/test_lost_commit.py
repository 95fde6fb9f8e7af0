"""A committed debit is never answered "not done" (issue #23 item 7): PostgreSQL backends running debits are
killed from another session (pg_terminate_backend) in the middle of batches under parallel keyless debits,
through the group commit and the single-debit way. Every 200 has its ledger row exactly once; a
`service_unavailable` 503 (retry advised) only for a debit with no row; where the outcome could not be
told, `outcome_unknown` without Retry-After; the audit is clean."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from decimal import Decimal
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


# ---- fractional charges (ledger.fraction_commit) ----

# PostgreSQL's own way to hold a COMMIT between "done here" and the answer: a synchronous standby that never
# confirms. The COMMIT is durable and becomes visible once its backend is terminated, but its reply never
# comes: the lost reply after COMMIT, on purpose and every time.
_CUT = """
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE application_name = 'mana-credits' AND wait_event = $1
"""


async def _cut_when_waiting(killer: asyncpg.Connection, wait_event: str, answer: asyncio.Task[Any]) -> int:
    """Terminate the service's sessions that wait on `wait_event` until `answer` is done; how many."""
    cut = 0
    while not answer.done():
        cut += await killer.fetchval(_CUT, wait_event)
        await asyncio.sleep(0.02)
    return cut


async def test_a_fractional_charge_cut_in_its_commit_is_told_by_its_rollup(
    database: OwnPostgres, jwks: JwksServer
) -> None:
    server = LiveServer(create_app(make_settings(database.admin_url, jwks, DB_POOL_SIZE=4)))
    base = await server.start()
    killer = await asyncpg.connect(database.admin_url)
    users = [f"cut-{uuid.uuid4()}" for _ in range(3)]
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            for user in users:
                grant = {"userId": user, "amount": 10, "reason": "t", "referenceId": f"fund-{user}"}
                response = await client.post(
                    "/api/v1/internal/credits/grant", json=grant, headers=service_headers()
                )
                assert response.status_code == 200

            def charge(user: str, amount: float) -> asyncio.Task[httpx.Response]:
                body = {"userId": user, "amount": amount, "appId": "chat", "description": f"{user} {amount}"}
                return asyncio.create_task(
                    client.post("/api/v1/internal/credits/use", json=body, headers=service_headers("chat"))
                )

            await killer.execute("ALTER SYSTEM SET synchronous_standby_names = 'nobody'")
            await killer.execute("SELECT pg_reload_conf()")
            try:
                # 1.5 bills a credit: its rollup's ledger row says the cut COMMIT went through.
                billed = charge(users[0], 1.5)
                assert await _cut_when_waiting(killer, "SyncRep", billed) == 1
                # 0.5 on a fresh accrual bills nothing: no ledger row can tell, so the truth is "unknown".
                accrued = charge(users[1], 0.5)
                assert await _cut_when_waiting(killer, "SyncRep", accrued) == 1
            finally:
                await killer.execute("ALTER SYSTEM RESET synchronous_standby_names")
                await killer.execute("SELECT pg_reload_conf()")
            # Cut before its COMMIT (waiting for a balance row another session holds): nothing applied, so
            # the caller is told to retry, and the retry is charged once.
            holder = await asyncpg.connect(database.admin_url)
            async with holder.transaction():
                await holder.execute("SELECT FROM credits.balances WHERE user_id = $1 FOR UPDATE", users[2])
                waiting = charge(users[2], 1.5)
                assert await _cut_when_waiting(killer, "transactionid", waiting) == 1
            await holder.close()
            retried = await charge(users[2], 1.5)
        rows = {
            r["user_id"]: r
            for r in await killer.fetch(
                "SELECT user_id, charged, billed, accrued FROM credits.usage_accruals "
                "WHERE user_id = ANY($1)",
                users,
            )
        }
        ledger_ids = await killer.fetch(
            "SELECT user_id, id::text AS id FROM credits.transactions "
            "WHERE type = 'usage' AND user_id = ANY($1)",
            users,
        )
        assert await audit(killer) == []
    finally:
        await killer.close()
        await server.stop()

    answer = billed.result()
    assert answer.status_code == 200, answer.text
    assert answer.json()["transaction"]["id"] == next(r["id"] for r in ledger_ids if r["user_id"] == users[0])
    assert (rows[users[0]]["charged"], rows[users[0]]["billed"]) == (Decimal("1.5"), 1)

    answer = accrued.result()
    assert (answer.status_code, answer.json()["code"]) == (503, "outcome_unknown")
    assert "retry-after" not in answer.headers
    assert rows[users[1]]["accrued"] == Decimal("0.5")  # it did go through: "unknown" was the honest answer

    answer = waiting.result()
    assert (answer.status_code, answer.json()["code"]) == (503, "service_unavailable"), answer.text
    assert retried.status_code == 200
    assert (rows[users[2]]["charged"], rows[users[2]]["billed"]) == (Decimal("1.5"), 1)
    assert [r["id"] for r in ledger_ids if r["user_id"] == users[2]] == [retried.json()["transaction"]["id"]]
