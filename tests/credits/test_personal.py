"""Personal credit routes (JWT): the old service's shapes and every documented error."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
import pytest

from tests.support import Api

TX_FIELDS = {
    "id", "userId", "type", "status", "amount", "balanceBefore", "balanceAfter", "appId", "description",
    "metadata", "idempotencyKey", "createdAt", "completedAt",
}  # fmt: skip


async def test_balance_requires_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/credits/balance")
    assert response.status_code == 401
    assert response.json() == {"statusCode": 401, "message": "Missing bearer token", "code": "unauthorized"}


async def test_new_user_balance_is_zero_and_row_is_created(api: Api, db: asyncpg.Connection) -> None:
    user = api.actor()
    assert await api.balance(user) == {"balance": 0, "totalEarned": 0, "totalSpent": 0, "reserved": 0}
    assert await db.fetchval("SELECT count(*) FROM credits.balances WHERE user_id = $1", user.id) == 1


async def test_use_debits_and_returns_transaction(
    api: Api, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user = api.actor()
    await api.fund(user.id, 100)
    response = await client.post(
        "/api/v1/credits/use",
        json={"amount": 5, "appId": "chat", "description": "GPT-4 answer", "metadata": {"model": "gpt-4"}},
        headers=user.headers,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["newBalance"] == {"balance": 95, "totalSpent": 5}
    tx = body["transaction"]
    assert set(tx) == TX_FIELDS
    assert (tx["type"], tx["status"], tx["amount"], tx["balanceBefore"], tx["balanceAfter"]) == (
        "usage", "completed", -5, 100, 95,
    )  # fmt: skip
    assert tx["userId"] == user.id and tx["appId"] == "chat" and tx["metadata"] == {"model": "gpt-4"}
    assert await api.balance(user) == {"balance": 95, "totalEarned": 100, "totalSpent": 5, "reserved": 0}
    stats = await db.fetch("SELECT app_id, credits_used FROM credits.usage_stats WHERE user_id = $1", user.id)
    assert [(r["app_id"], r["credits_used"]) for r in stats] == [("chat", 5)]


async def test_use_without_enough_credits_is_402_with_details(api: Api, client: httpx.AsyncClient) -> None:
    user = api.actor()
    await api.fund(user.id, 3)
    response = await client.post(
        "/api/v1/credits/use", json={"amount": 5, "appId": "chat", "description": "x"}, headers=user.headers
    )
    assert response.status_code == 402
    assert response.json() == {
        "statusCode": 402,
        "message": "Insufficient credits",
        "code": "insufficient_credits",
        "details": {"required": 5, "available": 3},
    }
    assert (await api.balance(user))["balance"] == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": 1.0005, "appId": "chat", "description": "x"}, "amount"),  # four decimals
        ({"amount": 0, "appId": "chat", "description": "x"}, "amount"),
        ({"amount": -3, "appId": "chat", "description": "x"}, "amount"),
        ({"amount": "5", "appId": "chat", "description": "x"}, "amount"),
        ({"appId": "chat", "description": "x"}, "amount"),
        ({"amount": 5, "description": "x"}, "appId"),
        ({"amount": 5, "appId": "chat", "description": ""}, "description"),
        ({"amount": 5, "appId": "chat", "description": "x", "metadata": "nope"}, "metadata"),
    ],
)
async def test_use_rejects_bad_input_with_400(
    api: Api, client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    user = api.actor()
    await api.fund(user.id, 50)
    response = await client.post("/api/v1/credits/use", json=body, headers=user.headers)
    assert response.status_code == 400
    payload = response.json()
    assert payload["code"] == "validation_error" and payload["statusCode"] == 400
    assert [item["field"] for item in payload["details"]["fields"]] == [field]
    assert (await api.balance(user))["balance"] == 50


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1,2]", b"null"])
async def test_use_rejects_malformed_json(api: Api, client: httpx.AsyncClient, raw: bytes) -> None:
    user = api.actor()
    response = await client.post(
        "/api/v1/credits/use", content=raw, headers={**user.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"


async def test_idempotent_use_replays_and_rejects_reuse(
    api: Api, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user = api.actor()
    await api.fund(user.id, 100)
    body = {"amount": 7, "appId": "chat", "description": "x"}
    headers = {**user.headers, "Idempotency-Key": "order-1"}
    first = await client.post("/api/v1/credits/use", json=body, headers=headers)
    again = await client.post("/api/v1/credits/use", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    other = await client.post("/api/v1/credits/use", json={**body, "amount": 8}, headers=headers)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    # The old body field works as the key too and shares the scope with the header.
    legacy = await client.post(
        "/api/v1/credits/use", json={**body, "idempotencyKey": "order-1"}, headers=user.headers
    )
    assert legacy.status_code == 200 and legacy.json() == first.json()
    assert (await api.balance(user))["balance"] == 93
    rows = await db.fetchval(
        "SELECT count(*) FROM credits.transactions WHERE user_id = $1 AND type = 'usage'", user.id
    )
    assert rows == 1


async def test_idempotency_keys_are_scoped_per_user(api: Api, client: httpx.AsyncClient) -> None:
    alice, bob = api.actor(), api.actor()
    for user in (alice, bob):
        await api.fund(user.id, 10)
    body = {"amount": 4, "appId": "chat", "description": "x"}
    for user in (alice, bob):
        response = await client.post(
            "/api/v1/credits/use", json=body, headers={**user.headers, "Idempotency-Key": "same-key"}
        )
        assert response.status_code == 200 and "idempotent-replayed" not in response.headers
        assert (await api.balance(user))["balance"] == 6


async def _use(client: httpx.AsyncClient, headers: dict[str, str], amount: int, app: str) -> None:
    response = await client.post(
        "/api/v1/credits/use",
        json={"amount": amount, "appId": app, "description": f"{app} {amount}"},
        headers=headers,
    )
    assert response.status_code == 200, response.text


async def test_transactions_offset_cursor_and_filters(api: Api, client: httpx.AsyncClient) -> None:
    user = api.actor()
    await api.fund(user.id, 1000)
    for i in range(1, 8):
        await _use(client, user.headers, i, "chat" if i % 2 else "picture")
    url = "/api/v1/credits/transactions"
    everything = (await client.get(url, headers=user.headers)).json()
    assert [t["amount"] for t in everything] == [-7, -6, -5, -4, -3, -2, -1, 1000]
    page = await client.get(url, params={"limit": 3, "offset": 2}, headers=user.headers)
    assert [t["amount"] for t in page.json()] == [-5, -4, -3]

    seen: list[int] = []
    params: dict[str, str | int] = {"limit": 3}
    while True:
        response = await client.get(url, params=params, headers=user.headers)
        assert response.status_code == 200
        seen.extend(t["amount"] for t in response.json())
        cursor = response.headers.get("x-next-cursor")
        if not cursor:
            break
        params = {"limit": 3, "cursor": cursor}
    assert seen == [t["amount"] for t in everything]

    usage = (await client.get(url, params={"type": "usage"}, headers=user.headers)).json()
    assert len(usage) == 7 and {t["type"] for t in usage} == {"usage"}
    picture = (await client.get(url, params={"appId": "picture"}, headers=user.headers)).json()
    assert [t["amount"] for t in picture] == [-6, -4, -2]


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 201}, {"limit": "ten"}, {"offset": -1}, {"cursor": "!!!"}, {"type": "bogus"}],
)
async def test_transactions_reject_bad_query(
    api: Api, client: httpx.AsyncClient, params: dict[str, str | int]
) -> None:
    user = api.actor()
    response = await client.get("/api/v1/credits/transactions", params=params, headers=user.headers)
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert [f["field"] for f in response.json()["details"]["fields"]] == list(params)


async def test_other_users_history_is_invisible(api: Api, client: httpx.AsyncClient) -> None:
    alice, bob = api.actor(), api.actor()
    await api.fund(alice.id, 10)
    response = await client.get("/api/v1/credits/transactions", headers=bob.headers)
    assert response.json() == []


async def test_packages_are_public_and_sorted(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    from mana_credits.payments.repository import seed_default_packages

    await seed_default_packages(db)
    assert await seed_default_packages(db) == 0  # idempotent
    response = await client.get("/api/v1/credits/packages")
    assert response.status_code == 200
    packages = response.json()
    assert set(packages[0]) == {
        "id",
        "name",
        "description",
        "credits",
        "priceEuroCents",
        "active",
        "sortOrder",
        "stripePriceId",
        "metadata",
        "createdAt",
        "updatedAt",
    }
    orders = [p["sortOrder"] for p in packages]
    assert orders == sorted(orders)
    assert {(p["credits"], p["priceEuroCents"]) for p in packages} >= {
        (100, 100),
        (500, 500),
        (1000, 900),
        (2500, 2000),
    }


async def test_operations_price_list_is_public(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/credits/operations")
    assert response.status_code == 200
    prices = {op["id"]: (op["category"], op["credits"]) for op in response.json()}
    assert prices["chat_gpt4"] == ("ai", 5)
    assert prices["deep_research"] == ("ai", 25)
    assert prices["cloud_sync_yearly"] == ("premium", 360)
    assert len([p for p in prices.values() if p[0] == "ai"]) == 18


async def test_purchases_list_and_lookup(api: Api, client: httpx.AsyncClient) -> None:
    user = api.actor()
    assert (await client.get("/api/v1/credits/purchases", headers=user.headers)).json() == []
    bad = await client.get("/api/v1/credits/purchase/not-a-uuid", headers=user.headers)
    assert bad.status_code == 400 and bad.json()["code"] == "validation_error"
    missing = await client.get(f"/api/v1/credits/purchase/{uuid.uuid4()}", headers=user.headers)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
