"""Internal credit routes (X-Service-Key): balance, use, refund, grant, init."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest

from mana_credits.ledger.audit import audit
from tests.support import APP_KEYS, Api, service_headers

BASE = "/api/v1/internal/credits"


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Service-Key": "wrong"}, {"X-Service-Key": ""}, {"X-Service-Key": "test-service-key-but-longer"}],
)
async def test_internal_routes_need_a_valid_service_key(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get(f"{BASE}/balance/someone", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


async def test_a_user_token_is_not_a_service_key(api: Api, client: httpx.AsyncClient) -> None:
    user = api.actor()
    response = await client.get(f"{BASE}/balance/{user.id}", headers=user.headers)
    assert response.status_code == 401


async def test_internal_balance_and_use(api: Api, client: httpx.AsyncClient) -> None:
    user = api.actor()
    await api.fund(user.id, 40)
    balance = await client.get(f"{BASE}/balance/{user.id}", headers=service_headers())
    assert balance.json() == {
        "balance": 40, "totalEarned": 40, "totalSpent": 0, "reserved": 0, "transactionsCount": 1
    }  # fmt: skip
    use = await client.post(
        f"{BASE}/use",
        json={"userId": user.id, "amount": 25, "appId": "research", "description": "deep research"},
        headers=service_headers("research"),
    )
    assert use.status_code == 200
    assert use.json()["newBalance"] == {"balance": 15, "totalSpent": 25}
    assert use.json()["transaction"]["appId"] == "research"
    broke = await client.post(
        f"{BASE}/use",
        json={"userId": user.id, "amount": 16, "appId": "research", "description": "again"},
        headers=service_headers("research"),
    )
    assert broke.status_code == 402
    assert broke.json()["details"] == {"required": 16, "available": 15}


async def test_per_app_key_records_the_calling_app(
    api: Api, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user = api.actor()
    await api.fund(user.id, 10)
    response = await client.post(
        f"{BASE}/use",
        # The body claims another app; the per-app key decides who charged.
        json={"userId": user.id, "amount": 2, "appId": "picture", "description": "chat reply"},
        headers={"X-Service-Key": APP_KEYS["chat"]},
    )
    assert response.status_code == 200
    row = await db.fetchrow(
        "SELECT app_id, metadata FROM credits.transactions WHERE user_id = $1 AND type = 'usage'", user.id
    )
    assert row is not None and row["app_id"] == "chat"


async def test_service_idempotency_is_scoped_per_calling_app(api: Api, client: httpx.AsyncClient) -> None:
    user = api.actor()
    await api.fund(user.id, 10)
    body = {"userId": user.id, "amount": 1, "appId": "x", "description": "x", "idempotencyKey": "job-1"}
    for key in APP_KEYS.values():
        response = await client.post(f"{BASE}/use", json=body, headers={"X-Service-Key": key})
        assert response.status_code == 200 and "idempotent-replayed" not in response.headers
    replay = await client.post(f"{BASE}/use", json=body, headers={"X-Service-Key": APP_KEYS["chat"]})
    assert replay.headers["idempotent-replayed"] == "true"
    assert (await api.balance(user))["balance"] == 8


async def test_refund_of_a_usage_never_exceeds_it(
    api: Api, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user = api.actor()
    await api.fund(user.id, 100)
    use = await client.post(
        f"{BASE}/use",
        json={"userId": user.id, "amount": 10, "appId": "picture", "description": "image"},
        headers=service_headers("picture"),
    )
    tx_id = use.json()["transaction"]["id"]
    refund = {"userId": user.id, "description": "generation failed", "transactionId": tx_id}
    first = await client.post(
        f"{BASE}/refund", json={**refund, "amount": 6}, headers=service_headers("picture")
    )
    assert first.status_code == 200
    assert first.json()["newBalance"] == {"balance": 96}
    assert first.json()["transaction"]["type"] == "refund"
    assert first.json()["transaction"]["amount"] == 6
    too_much = await client.post(
        f"{BASE}/refund", json={**refund, "amount": 5}, headers=service_headers("picture")
    )
    assert too_much.status_code == 409
    assert too_much.json()["details"] == {"requested": 5, "refundable": 4}
    rest = await client.post(
        f"{BASE}/refund", json={**refund, "amount": 4}, headers=service_headers("picture")
    )
    assert rest.status_code == 200 and rest.json()["newBalance"] == {"balance": 100}
    # A refund lowers totalSpent; it is not income.
    assert await api.balance(user) == {"balance": 100, "totalEarned": 100, "totalSpent": 0, "reserved": 0}
    assert await audit(db) == []


async def test_concurrent_refunds_of_one_usage_stay_within_it(api: Api, client: httpx.AsyncClient) -> None:
    user = api.actor()
    await api.fund(user.id, 20)
    use = await client.post(
        f"{BASE}/use",
        json={"userId": user.id, "amount": 10, "appId": "a", "description": "x"},
        headers=service_headers(),
    )
    body = {
        "userId": user.id,
        "amount": 3,
        "description": "r",
        "transactionId": use.json()["transaction"]["id"],
    }
    results = await asyncio.gather(
        *[client.post(f"{BASE}/refund", json=body, headers=service_headers()) for _ in range(8)]
    )
    assert sorted(r.status_code for r in results) == [200] * 3 + [409] * 5
    assert (await api.balance(user))["balance"] == 19


async def test_refund_of_unknown_or_foreign_usage(api: Api, client: httpx.AsyncClient) -> None:
    alice, bob = api.actor(), api.actor()
    await api.fund(alice.id, 10)
    use = await client.post(
        f"{BASE}/use",
        json={"userId": alice.id, "amount": 5, "appId": "a", "description": "x"},
        headers=service_headers(),
    )
    foreign = {
        "userId": bob.id,
        "amount": 1,
        "description": "x",
        "transactionId": use.json()["transaction"]["id"],
    }
    assert (await client.post(f"{BASE}/refund", json=foreign, headers=service_headers())).status_code == 404
    bad = {**foreign, "transactionId": "nope"}
    response = await client.post(f"{BASE}/refund", json=bad, headers=service_headers())
    assert response.status_code == 400 and response.json()["code"] == "validation_error"


async def test_free_refund_without_transaction(api: Api, client: httpx.AsyncClient) -> None:
    user = api.actor()
    response = await client.post(
        f"{BASE}/refund",
        json={"userId": user.id, "amount": 3, "description": "goodwill"},
        headers=service_headers(),
    )
    assert response.status_code == 200
    assert response.json()["newBalance"] == {"balance": 3}


async def test_grant_is_exactly_once_per_reference(
    api: Api, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user = api.actor()
    body = {"userId": user.id, "amount": 150, "reason": "signup bonus", "referenceId": f"signup-{user.id}"}
    results = await asyncio.gather(
        *[client.post(f"{BASE}/grant", json=body, headers=service_headers()) for _ in range(10)]
    )
    assert all(r.status_code == 200 for r in results)
    fresh = [r.json() for r in results if not r.json()["alreadyGranted"]]
    assert len(fresh) == 1
    assert set(fresh[0]) == {"ok", "alreadyGranted", "newBalance", "transactionId"}
    assert {r.json()["transactionId"] for r in results} == {fresh[0]["transactionId"]}
    assert all(r.json()["newBalance"] == 150 for r in results)
    rows = await db.fetch("SELECT type, amount FROM credits.transactions WHERE user_id = $1", user.id)
    assert [(r["type"], r["amount"]) for r in rows] == [("grant", 150)]


async def test_init_is_idempotent_under_concurrency(
    api: Api, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user_id = f"u-{uuid.uuid4()}"
    results = await asyncio.gather(
        *[client.post(f"{BASE}/init", json={"userId": user_id}, headers=service_headers()) for _ in range(20)]
    )
    assert {r.status_code for r in results} == {200}
    bodies = [r.json() for r in results]
    # The whole row, as the old service answered (mana-auth ignores the body; kept for other callers).
    assert all({**b, "createdAt": None, "updatedAt": None} == {
        "userId": user_id, "balance": 0, "totalEarned": 0, "totalSpent": 0, "reserved": 0, "version": 0,
        "createdAt": None, "updatedAt": None,
    } for b in bodies)  # fmt: skip
    assert len({b["createdAt"] for b in bodies}) == 1
    assert await db.fetchval("SELECT count(*) FROM credits.balances WHERE user_id = $1", user_id) == 1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/use", {"userId": "u", "amount": 2.5005, "appId": "a", "description": "x"}),
        ("/use", {"amount": 2, "appId": "a", "description": "x"}),
        ("/refund", {"userId": "u", "amount": -1, "description": "x"}),
        ("/grant", {"userId": "u", "amount": 1, "reason": "x"}),
        ("/grant", {"userId": "u", "amount": 0, "reason": "x", "referenceId": "r"}),
        ("/init", {}),
        ("/init", {"userId": 5}),
    ],
)
async def test_internal_bad_input_is_400(
    client: httpx.AsyncClient, path: str, body: dict[str, object]
) -> None:
    response = await client.post(f"{BASE}{path}", json=body, headers=service_headers())
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
