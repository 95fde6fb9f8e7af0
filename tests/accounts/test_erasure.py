"""Account deletion as mana-auth calls it (services/mana-auth/src/services/user-data.ts, deleteUserData):
`DELETE /api/v1/internal/credits/balance/:userId` with only `X-Service-Key`, reading `deletedCount`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import asyncpg
import httpx
from alembic import command

from mana_credits.db.migrate import alembic_config, upgrade_async
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


SECRET = "Erin asked about her HIV test results"


async def _keyed(client: httpx.AsyncClient, path: str, body: dict[str, object], key: str) -> httpx.Response:
    headers = {**AUTH_HEADERS, "X-App-Id": "chat", "Idempotency-Key": key}
    return await client.post(f"{BASE}/{path}", json=body, headers=headers)


async def test_stored_answers_of_services_lose_the_text_and_still_replay_once(
    api: Api, db: asyncpg.Connection
) -> None:
    """Issue 23.10: an app's keyed debit, refund, reserve and commit answers are stored under the app's
    scope; after the erasure a replay answers without the text and charges nothing again."""
    client = api.client
    user = api.actor()
    await api.fund(user.id, 500)
    secret = {"prompt": SECRET}
    requests = [
        ("use", {"userId": user.id, "amount": 7, "appId": "chat", "description": SECRET, "metadata": secret}),
        ("refund", {"userId": user.id, "amount": 2, "description": SECRET, "metadata": secret}),
        ("reserve", {"userId": user.id, "amount": 20, "reason": f"research:{SECRET}"}),
    ]
    keys = [f"k-{user.id}-{n}" for n in range(len(requests) + 1)]
    for (path, body), key in zip(requests, keys, strict=False):
        first = await _keyed(client, path, body, key)
        assert first.status_code == 200, first.text
    reservation = (await _keyed(client, *requests[2], keys[2])).json()["reservationId"]
    committed = {"reservationId": reservation, "amount": 5, "description": SECRET}
    assert (await _keyed(client, "commit", committed, keys[3])).status_code == 200
    before = (await client.get(f"{BASE}/balance/{user.id}", headers=AUTH_HEADERS)).json()

    assert (await client.delete(f"{BASE}/balance/{user.id}", headers=AUTH_HEADERS)).status_code == 200

    for (path, body), key in zip([*requests, ("commit", committed)], keys, strict=True):
        again = await _keyed(client, path, body, key)
        assert again.status_code == 200 and again.headers.get("idempotent-replayed") == "true", again.text
        assert "Erin" not in again.text and "HIV" not in again.text, (path, again.text)
    after = (await client.get(f"{BASE}/balance/{user.id}", headers=AUTH_HEADERS)).json()
    assert after == before  # nothing charged or credited again
    stored = await db.fetchval(
        "SELECT count(*) FROM credits.idempotency_keys WHERE response_body::text LIKE '%HIV%'"
    )
    assert stored == 0
    assert [o for o in await audit(db) if o.user_id == user.id] == []
    again = await client.delete(f"{BASE}/balance/{user.id}", headers=AUTH_HEADERS)
    assert again.json() == {"success": True, "deletedCount": 0}


async def test_reservation_reasons_are_erased(api: Api, db: asyncpg.Connection) -> None:
    """Issue 23.11: the reason of a hold (open, committed or released) leaves with the account."""
    client = api.client
    user = api.actor()
    await api.fund(user.id, 100)
    headers = {**AUTH_HEADERS, "X-App-Id": "mana-research"}
    ids = []
    for n in range(3):
        body = {"userId": user.id, "amount": 10, "reason": f"research:{n} divorce lawyer Berlin"}
        hold = await client.post(f"{BASE}/reserve", json=body, headers=headers)
        assert hold.status_code == 200, hold.text
        ids.append(hold.json()["reservationId"])
    assert (await client.post(f"{BASE}/commit", json={"reservationId": ids[0]}, headers=headers)).is_success
    released = await client.post(
        f"{BASE}/refund-reservation", json={"reservationId": ids[1]}, headers=headers
    )
    assert released.is_success

    assert (await client.delete(f"{BASE}/balance/{user.id}", headers=AUTH_HEADERS)).status_code == 200

    reasons = await db.fetch("SELECT reason, app_id FROM credits.reservations WHERE user_id = $1", user.id)
    assert len(reasons) == 3 and not [r for r in reasons if "lawyer" in r["reason"]], reasons
    assert {r["app_id"] for r in reasons} == {"mana-research"}
    assert [o for o in await audit(db) if o.user_id == user.id] == []


async def test_an_adopted_account_with_array_or_string_metadata_is_erased(
    api: Api, db: asyncpg.Connection
) -> None:
    """Issue 23.13: the old service's metadata can be any JSON; erasure must not fail on a non-object."""
    user = api.actor()
    await api.fund(user.id, 50)
    for metadata in (["Erika", "Berlin"], "Erika from Berlin", 42):
        await db.execute(
            """
            UPDATE credits.transactions SET metadata = $2::jsonb, description = 'Erika'
            WHERE id = (SELECT id FROM credits.transactions WHERE user_id = $1 ORDER BY created_at LIMIT 1)
            """,
            user.id,
            metadata,
        )
        response = await api.client.delete(f"{BASE}/balance/{user.id}", headers=AUTH_HEADERS)
        assert response.status_code == 200, response.text
        row = await db.fetchrow(
            "SELECT description, metadata FROM credits.transactions WHERE user_id = $1", user.id
        )
        assert row is not None and "Erika" not in f"{row['description']} {row['metadata']}"


async def test_answers_stored_before_migration_0011_find_their_user(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    """Keys stored before the answers named their user get it from the answer or the row it points to."""
    url = await fresh_database()
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0010")
    conn = await asyncpg.connect(url)
    try:
        tx = await conn.fetchval(
            "INSERT INTO credits.transactions (user_id, type, status, amount, balance_before, balance_after, "
            "app_id, description) VALUES ('u-old', 'usage', 'completed', -1, 1, 0, 'chat', 'x') RETURNING id"
        )
        hold = await conn.fetchval(
            "INSERT INTO credits.reservations (user_id, amount, reason, expires_at) "
            "VALUES ('u-old', 1, 'r', now()) RETURNING id"
        )
        bodies = {
            "debit": {"transaction": {"id": str(tx), "userId": "u-old", "description": "x"}},
            "reserve": {"reservationId": str(hold), "balance": 0},
            "commit": {"success": True, "transactionId": str(tx)},
            "release": {"success": True, "balance": 0},
        }
        for key, body in bodies.items():
            await conn.execute(
                "INSERT INTO credits.idempotency_keys "
                "(scope, key, request_hash, response_status, response_body) "
                "VALUES ('service:chat', $1, 'h', 200, $2::jsonb)",
                key,
                json.dumps(body),
            )
        await upgrade_async(url)
        rows = await conn.fetch("SELECT key, user_id FROM credits.idempotency_keys ORDER BY key")
    finally:
        await conn.close()
    found = {row["key"]: row["user_id"] for row in rows}
    assert found == {"commit": "u-old", "debit": "u-old", "release": None, "reserve": "u-old"}
