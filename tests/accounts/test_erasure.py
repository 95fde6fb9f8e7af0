"""Account deletion as mana-auth calls it (services/mana-auth/src/services/user-data.ts, deleteUserData):
`DELETE /api/v1/internal/credits/balance/:userId` with only `X-Service-Key`, reading `deletedCount`."""

from __future__ import annotations

import asyncpg
import httpx

from mana_credits.ledger.audit import audit
from tests.support import SERVICE_KEY, Actor, Api

BASE = "/api/v1/internal/credits"
AUTH_HEADERS = {"X-Service-Key": SERVICE_KEY}  # mana-auth sends no X-App-Id


async def _make_gift(client: httpx.AsyncClient, user: Actor, total: int, **body: object) -> dict[str, str]:
    response = await client.post("/api/v1/gifts", json={"totalCredits": total, **body}, headers=user.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _account_with_history(api: Api, db: asyncpg.Connection) -> tuple[Actor, Actor, dict[str, str]]:
    client = api.client
    user = api.actor(email="erase.me@example.com")
    friend = api.actor()
    await api.fund(user.id, 500)
    assert (
        await client.post("/api/v1/sync/activate", json={"interval": "monthly"}, headers=user.headers)
    ).status_code == 200
    use = await client.post(
        f"{BASE}/use",
        json={"userId": user.id, "amount": 7, "appId": "chat", "description": "Chat of erase.me@example.com",
              "metadata": {"prompt": "my secret"}},
        headers={**AUTH_HEADERS, "X-App-Id": "chat"},
    )  # fmt: skip
    assert use.status_code == 200, use.text
    hold = await client.post(
        f"{BASE}/reserve", json={"userId": user.id, "amount": 25, "reason": "research:openai"},
        headers={**AUTH_HEADERS, "X-App-Id": "mana-research"},
    )  # fmt: skip
    assert hold.status_code == 200
    redeemed = await _make_gift(client, user, 50, message="For you, Anna", creatorName="Erika")
    assert (
        await client.post(f"/api/v1/gifts/{redeemed['code']}/redeem", headers=friend.headers)
    ).status_code == 200
    pending = await _make_gift(client, user, 30, message="Happy birthday")
    # An adopted gift of the old service: it stored the creator's address as the name.
    await db.execute(
        "UPDATE gifts.gift_codes SET creator_name = 'erase.me@example.com' WHERE id = $1::uuid", pending["id"]
    )
    await db.execute(
        "INSERT INTO credits.stripe_customers (user_id, stripe_customer_id, email) VALUES ($1, $2, $3)",
        user.id, f"cus_{user.id[-12:]}", user.email,
    )  # fmt: skip
    await db.execute(
        "INSERT INTO credits.notification_outbox (external_id, payload) VALUES ($1, $2)",
        f"pause-{user.id}", {"userId": user.id, "recipient": user.email},
    )  # fmt: skip
    return user, friend, pending


async def test_deleting_an_account_erases_personal_data_and_keeps_the_arithmetic(
    api: Api, db: asyncpg.Connection
) -> None:
    client = api.client
    user, friend, pending = await _account_with_history(api, db)
    before = await client.get(f"{BASE}/balance/{user.id}", headers=AUTH_HEADERS)

    response = await client.delete(f"{BASE}/balance/{user.id}", headers=AUTH_HEADERS)
    assert response.status_code == 200, response.text
    assert response.json()["success"] is True and response.json()["deletedCount"] > 0

    after = (await client.get(f"{BASE}/balance/{user.id}", headers=AUTH_HEADERS)).json()
    # The hold went back to the balance; nothing else moved, and the ledger still adds up.
    assert after["reserved"] == 0 and after["balance"] == before.json()["balance"] + 25
    assert after["transactionsCount"] == before.json()["transactionsCount"]
    assert [o for o in await audit(db) if o.user_id in (user.id, friend.id)] == []

    texts = await db.fetchval(
        """
        SELECT string_agg(coalesce(description, '') || coalesce(metadata::text, ''), ' ')
        FROM credits.transactions WHERE user_id = ANY($1::text[])
        """,
        [user.id, friend.id],
    )
    assert "erase.me" not in texts and "my secret" not in texts and "Erika" not in texts
    gift_rows = await db.fetch(
        "SELECT creator_name, message FROM gifts.gift_codes WHERE creator_id = $1", user.id
    )
    assert {(r["creator_name"], r["message"]) for r in gift_rows} == {(None, None)}
    assert await db.fetchval("SELECT email FROM credits.stripe_customers WHERE user_id = $1", user.id) is None
    assert await db.fetchval(
        "SELECT count(*) FROM credits.notification_outbox WHERE payload->>'userId' = $1", user.id
    ) == 0  # fmt: skip

    sync = await client.get(f"/api/v1/internal/sync/status/{user.id}", headers=AUTH_HEADERS)
    assert (sync.json()["active"], sync.json()["nextChargeAt"]) == (False, None)

    # mana-auth may retry: the same 200, nothing left to erase.
    again = await client.delete(f"{BASE}/balance/{user.id}", headers=AUTH_HEADERS)
    assert again.status_code == 200 and again.json() == {"success": True, "deletedCount": 0}
    assert (await client.get(f"{BASE}/balance/{user.id}", headers=AUTH_HEADERS)).json() == after
    # The friend can still redeem the gift they were given; its page names no sender.
    public = (await client.get(f"/api/v1/gifts/{pending['code']}")).json()
    assert public["creatorName"] is None and public["status"] == "active"
    assert (
        await client.post(f"/api/v1/gifts/{pending['code']}/redeem", headers=friend.headers)
    ).status_code == 200

    assert [o for o in await audit(db) if o.user_id in (user.id, friend.id)] == []


async def test_deletion_needs_the_service_key(api: Api) -> None:
    user = api.actor()
    await api.fund(user.id, 10)
    for headers in ({}, user.headers, {"X-Service-Key": "wrong"}):
        response = await api.client.delete(f"{BASE}/balance/{user.id}", headers=headers)
        assert response.status_code == 401, response.text
    too_long = await api.client.delete(f"{BASE}/balance/{'x' * 256}", headers=AUTH_HEADERS)
    assert too_long.status_code == 400
    unknown = await api.client.delete(f"{BASE}/balance/never-seen", headers=AUTH_HEADERS)
    assert unknown.json() == {"success": True, "deletedCount": 0}
