"""packages/shared-hono/src/credits.ts, used by every Hono backend: `X-Service-Key`, `X-App-Id: APP_ID`
(`unknown` when unset); getBalance reads balance/totalEarned/totalSpent; consume and refund only look at
`res.ok` — so a 402 must be a non-2xx, never a 200 with an error inside."""

from __future__ import annotations

import asyncpg
import pytest

from tests.support import SERVICE_KEY, Api


@pytest.mark.parametrize("app_id", ["picture", "unknown"])
async def test_balance_consume_refund(api: Api, db: asyncpg.Connection, app_id: str) -> None:
    client, user = api.client, api.actor()
    await api.fund(user.id, 10)
    headers = {"Content-Type": "application/json", "X-Service-Key": SERVICE_KEY, "X-App-Id": app_id}

    balance = await client.get(f"/api/v1/internal/credits/balance/{user.id}", headers=headers)
    assert balance.is_success
    assert {k: balance.json()[k] for k in ("balance", "totalEarned", "totalSpent")} == {
        "balance": 10, "totalEarned": 10, "totalSpent": 0,
    }  # fmt: skip

    consume = await client.post(
        "/api/v1/internal/credits/use", headers=headers,
        json={"userId": user.id, "amount": 8, "appId": app_id, "description": "Image generation",
              "metadata": {"operation": "image_generation", "model": "flux"}},
    )  # fmt: skip
    assert consume.is_success
    short = await client.post(
        "/api/v1/internal/credits/use", headers=headers,
        json={"userId": user.id, "amount": 8, "appId": app_id, "description": "Image generation",
              "metadata": {"operation": "image_generation"}},
    )  # fmt: skip
    assert not short.is_success and short.status_code == 402  # consumeCredits → false

    refund = await client.post(
        "/api/v1/internal/credits/refund", headers=headers,
        json={"userId": user.id, "amount": 8, "appId": app_id, "description": "Image generation failed"},
    )  # fmt: skip
    assert refund.is_success
    rows = await db.fetch(
        "SELECT type::text, amount, app_id, metadata->>'operation' AS op FROM credits.transactions "
        "WHERE user_id = $1 ORDER BY created_at, id",
        user.id,
    )
    assert [(r["type"], r["amount"], r["app_id"], r["op"]) for r in rows][1:] == [
        ("usage", -8, app_id, "image_generation"),
        ("refund", 8, app_id, None),
    ]
