"""Real parallel requests against one account: no lost update, no overdraft, one effect per key."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx

from mana_credits.context import AppContext
from mana_credits.ledger.audit import audit
from tests.support import Api


async def test_200_concurrent_debits_of_1_on_100(
    api: Api, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user = api.actor()
    await api.fund(user.id, 100)
    body = {"amount": 1, "appId": "chat", "description": "one credit"}
    results = await asyncio.gather(
        *[client.post("/api/v1/credits/use", json=body, headers=user.headers) for _ in range(200)]
    )
    statuses = [r.status_code for r in results]
    assert statuses.count(200) == 100
    assert statuses.count(402) == 100
    assert await api.balance(user) == {"balance": 0, "totalEarned": 100, "totalSpent": 100, "reserved": 0}
    after = sorted(r.json()["newBalance"]["balance"] for r in results if r.status_code == 200)
    assert after == list(range(100))  # every debit saw a distinct balance: no lost update
    count = await db.fetchval(
        "SELECT count(*) FROM credits.transactions WHERE user_id = $1 AND type = 'usage'", user.id
    )
    assert count == 100
    assert await audit(db) == []


async def test_same_idempotency_key_50_times_at_once(
    api: Api, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user = api.actor()
    await api.fund(user.id, 100)
    body = {"amount": 10, "appId": "chat", "description": "retried by the caller"}
    headers = {**user.headers, "Idempotency-Key": "retry-storm"}
    results = await asyncio.gather(
        *[client.post("/api/v1/credits/use", json=body, headers=headers) for _ in range(50)]
    )
    assert {r.status_code for r in results} == {200}
    replays = [r for r in results if r.headers.get("idempotent-replayed") == "true"]
    assert len(replays) == 49
    assert {r.json()["transaction"]["id"] for r in results} == {results[0].json()["transaction"]["id"]}
    rows = await db.fetchval(
        "SELECT count(*) FROM credits.transactions WHERE user_id = $1 AND type = 'usage'", user.id
    )
    assert rows == 1
    assert (await api.balance(user))["balance"] == 90
    reused = await client.post("/api/v1/credits/use", json={**body, "amount": 11}, headers=headers)
    assert reused.status_code == 409 and reused.json()["code"] == "idempotency_key_reused"
    assert (await api.balance(user))["balance"] == 90


async def test_failed_attempt_does_not_burn_the_key(api: Api, client: httpx.AsyncClient) -> None:
    user = api.actor()
    body = {"amount": 10, "appId": "chat", "description": "x"}
    headers = {**user.headers, "Idempotency-Key": "after-top-up"}
    assert (await client.post("/api/v1/credits/use", json=body, headers=headers)).status_code == 402
    await api.fund(user.id, 10)
    retried = await client.post("/api/v1/credits/use", json=body, headers=headers)
    assert retried.status_code == 200 and "idempotent-replayed" not in retried.headers
    assert (await api.balance(user))["balance"] == 0


async def test_old_request_keys_are_purged_but_grant_references_kept(
    api: Api, client: httpx.AsyncClient, ctx: AppContext, db: asyncpg.Connection
) -> None:
    from datetime import timedelta

    from mana_credits.kit import idempotency

    user = api.actor()
    await api.fund(user.id, 10)  # a grant reference
    body = {"amount": 1, "appId": "chat", "description": "x"}
    headers = {**user.headers, "Idempotency-Key": "old-key"}
    assert (await client.post("/api/v1/credits/use", json=body, headers=headers)).status_code == 200
    removed = await idempotency.purge(ctx.pool, ctx.clock.now() + idempotency.RETENTION + timedelta(days=1))
    assert removed >= 1
    scopes = await db.fetch(
        "SELECT scope FROM credits.idempotency_keys WHERE scope IN ($1, $2)",
        f"user:{user.id}",
        f"grant:{user.id}",
    )
    assert [r["scope"] for r in scopes] == [f"grant:{user.id}"]
    # The purged key is usable again: a new, separate debit.
    again = await client.post("/api/v1/credits/use", json=body, headers=headers)
    assert again.status_code == 200 and "idempotent-replayed" not in again.headers
    assert (await api.balance(user))["balance"] == 8
