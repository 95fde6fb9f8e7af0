"""Creating gifts, listing them, the public lookup, and bad input."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta

import asyncpg
import pytest

from mana_credits.context import AppContext
from tests.gifts.conftest import Gifts, assert_audit_clean, ledger_rows
from tests.support import Api

ALPHABET = set("ABCDEFGHJKLMNPQRSTUVWXYZ23456789")


async def test_create_debits_creator_and_returns_gift(
    gifts: Gifts, ctx: AppContext, db: asyncpg.Connection
) -> None:
    creator = await gifts.creator(1000, name="Alice A.")
    gift = await gifts.create(creator, 250, message="Happy birthday", expirationDays=10)

    assert len(gift["code"]) == 8 and set(gift["code"]) <= ALPHABET
    assert gift["shortUrl"] == f"https://mana.test/g/{gift['code']}"
    assert gift["creatorId"] == creator.id
    assert gift["creatorName"] == "Alice A."
    assert gift["totalCredits"] == 250
    assert gift["redeemed"] == 0
    assert gift["type"] == "simple"
    assert gift["status"] == "active"
    assert gift["targetEmail"] is None
    assert gift["message"] == "Happy birthday"
    assert {"id", "expiresAt", "createdAt", "updatedAt"} <= gift.keys()

    assert await gifts.balance(creator) == 750
    rows = await ledger_rows(db, creator.id)
    assert [(row["type"], row["amount"]) for row in rows] == [("grant", 1000), ("gift", -250)]
    assert rows[-1]["metadata"]["giftCodeId"] == gift["id"]
    await assert_audit_clean(ctx)


async def test_default_expiry_is_90_days(gifts: Gifts, ctx: AppContext) -> None:
    creator = await gifts.creator()
    before = ctx.clock.now()
    gift = await gifts.create(creator, 5)
    expires = datetime.fromisoformat(gift["expiresAt"])
    assert before + timedelta(days=90) <= expires <= ctx.clock.now() + timedelta(days=90)


async def test_insufficient_credits_is_402_with_details_and_writes_nothing(
    gifts: Gifts, db: asyncpg.Connection
) -> None:
    creator = await gifts.creator(30)
    response = await gifts.client.post("/api/v1/gifts", json={"totalCredits": 31}, headers=creator.headers)
    assert response.status_code == 402
    body = response.json()
    assert body["code"] == "insufficient_credits"
    assert body["details"] == {"required": 31, "available": 30}
    assert await gifts.balance(creator) == 30
    assert await db.fetchval("SELECT count(*) FROM gifts.gift_codes WHERE creator_id = $1", creator.id) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"totalCredits": 0}, "totalCredits"),
        ({"totalCredits": 10_001}, "totalCredits"),
        ({"totalCredits": 1.5}, "totalCredits"),
        ({}, "totalCredits"),
        ({"totalCredits": 10, "type": "riddle"}, "type"),
        ({"totalCredits": 10, "type": "personalized"}, "targetEmail"),
        ({"totalCredits": 10, "type": "personalized", "targetEmail": "not-an-email"}, "targetEmail"),
        ({"totalCredits": 10, "targetEmail": "bob@example.com"}, "targetEmail"),
        ({"totalCredits": 10, "message": "x" * 501}, "message"),
        ({"totalCredits": 10, "expirationDays": 0}, "expirationDays"),
        ({"totalCredits": 10, "expirationDays": 366}, "expirationDays"),
    ],
)
async def test_bad_create_input_is_400(gifts: Gifts, body: dict[str, object], field: str) -> None:
    creator = await gifts.creator(100)
    response = await gifts.client.post("/api/v1/gifts", json=body, headers=creator.headers)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "validation_error"
    assert field in response.text
    assert await gifts.balance(creator) == 100


async def test_create_requires_a_token(gifts: Gifts) -> None:
    response = await gifts.client.post("/api/v1/gifts", json={"totalCredits": 5})
    assert response.status_code == 401


async def test_create_is_idempotent(gifts: Gifts, db: asyncpg.Connection) -> None:
    creator = await gifts.creator(100)
    headers = {**creator.headers, "Idempotency-Key": "gift-1"}
    first = await gifts.client.post("/api/v1/gifts", json={"totalCredits": 40}, headers=headers)
    again = await gifts.client.post("/api/v1/gifts", json={"totalCredits": 40}, headers=headers)
    other = await gifts.client.post("/api/v1/gifts", json={"totalCredits": 41}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    assert await gifts.balance(creator) == 60
    assert await db.fetchval("SELECT count(*) FROM gifts.gift_codes WHERE creator_id = $1", creator.id) == 1


async def test_public_lookup_normalizes_and_never_shows_an_email(gifts: Gifts) -> None:
    creator = await gifts.creator(name="Carla")
    gift = await gifts.create(creator, 70, type="personalized", targetEmail="Dana@Example.com", message="Hi")
    code = gift["code"]
    typed = f" {code[:4].lower()}-{code[4:].lower()} "

    response = await gifts.client.get(f"/api/v1/gifts/{typed}")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "code": code,
        "type": "personalized",
        "status": "active",
        "totalCredits": 70,
        "redeemed": False,
        "message": "Hi",
        "creatorName": "Carla",
        "expiresAt": gift["expiresAt"],
        "isPersonalized": True,
    }
    assert "@" not in response.text and creator.email not in response.text


async def test_lists_created_and_received(gifts: Gifts, api: Api) -> None:
    creator = await gifts.creator(name="Erin")
    friend = api.actor()
    first = await gifts.create(creator, 10)
    second = await gifts.create(creator, 20, message="for you")
    assert (await gifts.redeem(friend, second["code"])).status_code == 200

    created = (await gifts.client.get("/api/v1/gifts/me/created", headers=creator.headers)).json()
    assert [(g["id"], g["status"], g["redeemed"]) for g in created] == [
        (second["id"], "depleted", 1),
        (first["id"], "active", 0),
    ]
    received = (await gifts.client.get("/api/v1/gifts/me/received", headers=friend.headers)).json()
    assert len(received) == 1
    item = received[0]
    assert item["giftCodeId"] == second["id"]
    assert item["code"] == second["code"]
    assert item["creditsReceived"] == 20
    assert item["creatorName"] == "Erin"
    assert item["message"] == "for you"
    assert "createdAt" in item and "id" in item
    assert (await gifts.client.get("/api/v1/gifts/me/received", headers=creator.headers)).json() == []


async def test_parallel_creates_never_overdraw(gifts: Gifts, ctx: AppContext) -> None:
    creator = await gifts.creator(100)
    responses = await asyncio.gather(
        *(
            gifts.client.post("/api/v1/gifts", json={"totalCredits": 30}, headers=creator.headers)
            for _ in range(6)
        )
    )
    assert Counter(r.status_code for r in responses) == {201: 3, 402: 3}
    assert len({r.json()["code"] for r in responses if r.status_code == 201}) == 3
    assert await gifts.balance(creator) == 10
    await assert_audit_clean(ctx)
