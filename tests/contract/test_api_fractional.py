"""apps/api's metered usage: modules/chat/routes.ts and who/routes.ts call shared-hono's
`validateCredits(user, 'AI_CHAT', 0.1)` (reads the internal balance: `balance >= 0.1`) and then
`consumeCredits(user, 'AI_CHAT', 0.1, 'Chat: gemma3:4b')`: POST /internal/credits/use with
`{userId, amount: 0.1, appId: APP_ID, description, metadata: {operation}}`, `X-App-Id: APP_ID`, reading only
`res.ok`. Before: a 400 (`Expected int, got float`), never billed. Fractions accrue per user and app;
each whole credit is one usage row (ledger.accrual)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import asyncpg
import httpx

from mana_credits.context import AppContext
from mana_credits.ledger.audit import audit
from tests.support import SERVICE_KEY, Api

APP = "mana-api"
HEADERS = {"Content-Type": "application/json", "X-Service-Key": SERVICE_KEY, "X-App-Id": APP}
BASE = "/api/v1/internal/credits"


async def _consume(client: httpx.AsyncClient, user_id: str, amount: Any, **headers: str) -> httpx.Response:
    body = {"userId": user_id, "amount": amount, "appId": APP, "description": "Chat: gemma3:4b",
            "metadata": {"operation": "AI_CHAT"}}  # fmt: skip
    return await client.post(f"{BASE}/use", json=body, headers={**HEADERS, **headers})


async def _balance(client: httpx.AsyncClient, user_id: str) -> dict[str, Any]:
    response = await client.get(f"{BASE}/balance/{user_id}", headers=HEADERS)
    assert response.is_success
    return dict(response.json())


async def _usage_rows(db: asyncpg.Connection, user_id: str) -> list[tuple[int, Any]]:
    rows = await db.fetch(
        "SELECT amount, metadata->'accrual'->>'charges' AS charges FROM credits.transactions "
        "WHERE user_id = $1 AND type = 'usage' ORDER BY created_at",
        user_id,
    )
    return [(r["amount"], r["charges"]) for r in rows]


async def _audit_clean(db: asyncpg.Connection) -> None:
    assert [o.problems for o in await audit(db)] == []


async def test_ten_chats_at_a_tenth_bill_one_credit_once(api: Api, db: asyncpg.Connection) -> None:
    client, user = api.client, api.actor()
    await api.fund(user.id, 3)
    for i in range(1, 10):
        assert (await _balance(client, user.id))["balance"] >= 0.1  # validateCredits
        consumed = await _consume(client, user.id, 0.1)
        assert consumed.status_code == 200, consumed.text
        assert consumed.json()["transaction"] is None and consumed.json()["accrued"] == i / 10
    accrued = await _balance(client, user.id)
    assert (accrued["balance"], accrued["accrued"], accrued["totalSpent"]) == (3, 0.9, 0)
    tenth = await _consume(client, user.id, 0.1)
    assert tenth.status_code == 200 and tenth.json()["transaction"]["amount"] == -1
    assert tenth.json()["accrued"] == 0
    after = await _balance(client, user.id)
    assert (after["balance"], after.get("accrued"), after["totalSpent"]) == (2, None, 1)  # 0: left out
    assert await _usage_rows(db, user.id) == [(-1, "10")]
    used = await db.fetchval("SELECT sum(credits_used) FROM credits.usage_stats WHERE user_id = $1", user.id)
    assert used == 1  # the usage chart counts the billed credit
    # 2.5 is two whole credits and a half; exact decimals: 0.5 + 0.5 is one more credit.
    assert (await _consume(client, user.id, 1.5)).json()["accrued"] == 0.5
    assert (await _consume(client, user.id, 0.5)).json()["transaction"]["amount"] == -1
    assert (await _balance(client, user.id))["balance"] == 0
    await _audit_clean(db)


async def test_concurrent_tenths_bill_exactly(api: Api, db: asyncpg.Connection) -> None:
    client, user = api.client, api.actor()
    await api.fund(user.id, 10)
    answers = await asyncio.gather(*(_consume(client, user.id, 0.1) for _ in range(40)))
    assert [a.status_code for a in answers] == [200] * 40
    after = await _balance(client, user.id)
    assert (after["balance"], after.get("accrued", 0)) == (6, 0)
    assert [amount for amount, _ in await _usage_rows(db, user.id)] == [-1] * 4
    await _audit_clean(db)


async def test_a_credit_that_cannot_be_paid_is_402(api: Api, db: asyncpg.Connection) -> None:
    client, user = api.client, api.actor()
    assert (await _consume(client, user.id, 0.1)).status_code == 402  # nothing to accrue toward
    await api.fund(user.id, 1)
    for _ in range(9):
        assert (await _consume(client, user.id, 0.1)).status_code == 200
    spent = await client.post(
        f"{BASE}/use", json={"userId": user.id, "amount": 1, "appId": "chat", "description": "chat"},
        headers={**HEADERS, "X-App-Id": "chat"},
    )  # fmt: skip
    assert spent.status_code == 200  # the credit the accrual heads for is spent elsewhere
    refused = await _consume(client, user.id, 0.1)
    assert refused.status_code == 402 and refused.json()["code"] == "insufficient_credits"
    after = await _balance(client, user.id)
    assert (after["balance"], after["accrued"]) == (0, 0.9)  # unchanged by the 402
    await _audit_clean(db)


async def test_idempotency_key_and_bad_amounts(api: Api, db: asyncpg.Connection) -> None:
    client, user = api.client, api.actor()
    await api.fund(user.id, 5)
    first = await _consume(client, user.id, 0.7, **{"Idempotency-Key": "chat-1"})
    again = await _consume(client, user.id, 0.7, **{"Idempotency-Key": "chat-1"})
    assert first.status_code == again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == first.json()
    assert (await _balance(client, user.id))["accrued"] == 0.7
    rolled = await _consume(client, user.id, 0.4, **{"Idempotency-Key": "chat-2"})
    replay = await _consume(client, user.id, 0.4, **{"Idempotency-Key": "chat-2"})
    assert rolled.json()["transaction"]["amount"] == -1 and replay.json() == rolled.json()
    assert (await _balance(client, user.id))["balance"] == 4
    reused = await _consume(client, user.id, 0.5, **{"Idempotency-Key": "chat-2"})
    assert reused.status_code == 409
    for bad in (0.0001, 0, -0.1, 1_000_000_000.5, "abc", "0.1", True, 0.30000000000000004):
        answer = await _consume(client, user.id, bad)
        assert answer.status_code == 400 and answer.json()["code"] == "validation_error", (bad, answer.text)
    assert (await _balance(client, user.id))["accrued"] == 0.1
    await _audit_clean(db)


async def test_audit_finds_an_accrual_that_does_not_add_up(
    api: Api, ctx: AppContext, db: asyncpg.Connection
) -> None:
    client, user = api.client, api.actor()
    await api.fund(user.id, 2)
    for _ in range(12):
        assert (await _consume(client, user.id, 0.1)).status_code == 200
    await _audit_clean(db)
    await db.execute("DELETE FROM credits.accrual_rollups WHERE user_id = $1", user.id)
    found = [o for o in await audit(db) if o.user_id == user.id]
    assert [o.problems for o in found] == [["billed 1 != rolled up 0"]]
    await db.execute(
        "INSERT INTO credits.accrual_rollups (transaction_id, user_id, app_id, credits) "
        "SELECT id, user_id, app_id, 1 FROM credits.transactions WHERE user_id = $1 AND type = 'usage'",
        user.id,
    )
    await _audit_clean(db)


async def test_erasure_keeps_the_amounts_of_accruals(api: Api, db: asyncpg.Connection) -> None:
    client, user = api.client, api.actor()
    await api.fund(user.id, 3)
    for _ in range(13):
        assert (await _consume(client, user.id, 0.1)).status_code == 200
    erased = await client.delete(f"{BASE}/balance/{user.id}", headers=HEADERS)
    assert erased.status_code == 200, erased.text
    rows = await db.fetch(
        "SELECT description, metadata FROM credits.transactions WHERE user_id = $1 AND type = 'usage'",
        user.id,
    )
    assert [(r["description"], "operation" in r["metadata"]) for r in rows] == [("Usage", False)]
    after = await _consume(client, user.id, 0.1)  # a service that still sends after the erasure
    assert after.status_code == 200
    accrual = await db.fetchrow(
        "SELECT charged, billed, accrued FROM credits.usage_accruals WHERE user_id = $1", user.id
    )
    assert accrual is not None and tuple(accrual) == (Decimal("1.4"), 1, Decimal("0.4"))
    await _audit_clean(db)


async def test_the_published_amount_takes_three_decimals(client: httpx.AsyncClient) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    for name in ("UseCredits", "InternalUseCredits"):
        amount = schemas[name]["properties"]["amount"]
        assert (amount["type"], amount["multipleOf"], amount["exclusiveMinimum"]) == ("number", 0.001, 0)
