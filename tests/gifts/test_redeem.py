"""Redeeming: exactly once, only by the right person, with errors that say why."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from datetime import timedelta

import asyncpg
import httpx

from mana_credits.context import AppContext
from tests.gifts.conftest import Gifts, assert_audit_clean
from tests.support import Api, service_headers

FromIp = Callable[[str | None], AbstractAsyncContextManager[httpx.AsyncClient]]


async def gift_ledger(db: asyncpg.Connection, gift_id: str) -> list[tuple[str, str, int]]:
    rows = await db.fetch(
        "SELECT user_id, type::text, amount FROM credits.transactions WHERE metadata->>'giftCodeId' = $1 "
        "ORDER BY created_at, id",
        gift_id,
    )
    return [(row["user_id"], row["type"], row["amount"]) for row in rows]


async def test_redeem_credits_the_redeemer(gifts: Gifts, api: Api, db: asyncpg.Connection) -> None:
    creator = await gifts.creator(500, name="Frank")
    gift = await gifts.create(creator, 120, message="Enjoy")
    friend = api.actor()

    response = await gifts.client.post(
        f"/api/v1/gifts/{gift['code'].lower()}/redeem", json={"sourceAppId": "chat"}, headers=friend.headers
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "success": True,
        "creditsReceived": 120,
        "message": "Enjoy",
        "creatorName": "Frank",
        "credits": 120,
        "newBalance": 120,
    }
    assert await gifts.balance(friend) == 120
    assert await gifts.balance(creator) == 380
    assert await gift_ledger(db, gift["id"]) == [(creator.id, "gift", -120), (friend.id, "gift", 120)]
    row = await db.fetchrow("SELECT * FROM gifts.gift_redemptions WHERE gift_code_id = $1", gift["id"])
    assert row is not None
    assert (row["redeemer_user_id"], row["status"], row["credits_received"], row["source_app_id"]) == (
        friend.id,
        "success",
        120,
        "chat",
    )
    public = (await gifts.client.get(f"/api/v1/gifts/{gift['code']}")).json()
    assert (public["status"], public["redeemed"]) == ("depleted", True)


async def test_twenty_users_redeem_one_code_at_once(
    gifts: Gifts, api: Api, ctx: AppContext, db: asyncpg.Connection, from_ip: FromIp
) -> None:
    creator = await gifts.creator(1000)
    gift = await gifts.create(creator, 300)
    users = [api.actor() for _ in range(20)]

    async with AsyncExitStack() as stack:
        # Twenty people, twenty devices: each from its own address.
        clients = [await stack.enter_async_context(from_ip(None)) for _ in users]
        responses = await asyncio.gather(
            *(gifts.redeem(user, gift["code"], client) for user, client in zip(users, clients, strict=True))
        )

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {200: 1, 409: 19}, [r.text for r in responses]
    losers = [r.json() for r in responses if r.status_code == 409]
    assert {body["code"] for body in losers} == {"gift_already_redeemed"}
    assert all("already been redeemed" in body["message"] for body in losers)

    winner = next(user for user, r in zip(users, responses, strict=True) if r.status_code == 200)
    assert await gift_ledger(db, gift["id"]) == [(creator.id, "gift", -300), (winner.id, "gift", 300)]
    for user in users:
        assert await gifts.balance(user) == (300 if user is winner else 0)
    assert await gifts.balance(creator) == 700
    redemptions = Counter(
        row["status"]
        for row in await db.fetch(
            "SELECT status::text FROM gifts.gift_redemptions WHERE gift_code_id = $1", gift["id"]
        )
    )
    assert redemptions == {"success": 1, "failed_depleted": 19}
    await assert_audit_clean(ctx)


async def test_personalized_gift_only_for_its_email(gifts: Gifts, api: Api, db: asyncpg.Connection) -> None:
    creator = await gifts.creator()
    gift = await gifts.create(creator, 50, type="personalized", targetEmail="Grace.Hopper@Example.com")
    stranger = api.actor()
    grace = api.actor(email="grace.hopper@EXAMPLE.COM")

    refused = await gifts.redeem(stranger, gift["code"])
    assert refused.status_code == 403
    assert refused.json()["code"] == "gift_wrong_recipient"
    assert await gifts.balance(stranger) == 0

    accepted = await gifts.redeem(grace, gift["code"])
    assert accepted.status_code == 200, accepted.text
    assert await gifts.balance(grace) == 50
    statuses = await db.fetch(
        "SELECT redeemer_user_id, status::text FROM gifts.gift_redemptions WHERE gift_code_id = $1 "
        "ORDER BY created_at",
        gift["id"],
    )
    assert [(row["redeemer_user_id"], row["status"]) for row in statuses] == [
        (stranger.id, "failed_wrong_user"),
        (grace.id, "success"),
    ]


async def test_creator_cannot_redeem_own_gift(gifts: Gifts) -> None:
    creator = await gifts.creator(100)
    gift = await gifts.create(creator, 10)
    response = await gifts.redeem(creator, gift["code"])
    assert response.status_code == 400
    assert response.json()["code"] == "gift_own"
    assert await gifts.balance(creator) == 90


async def test_unknown_code_is_404(gifts: Gifts, api: Api, from_ip: FromIp) -> None:
    async with from_ip(None) as client:
        response = await gifts.redeem(api.actor(), "ZZZZZZZZ", client)
        lookup = await client.get("/api/v1/gifts/ZZZZ-ZZZZ")
        nonsense = await client.get("/api/v1/gifts/%F0%9F%8E%81")
    assert response.status_code == 404 and response.json()["code"] == "gift_not_found"
    assert lookup.status_code == 404 and nonsense.status_code == 404


async def test_used_cancelled_and_expired_codes_say_why(gifts: Gifts, api: Api, ctx: AppContext) -> None:
    creator = await gifts.creator(1000)
    used, cancelled, expiring = [await gifts.create(creator, 10) for _ in range(3)]
    first, second = api.actor(), api.actor()
    assert (await gifts.redeem(first, used["code"])).status_code == 200
    response = await gifts.client.delete(f"/api/v1/gifts/{cancelled['id']}", headers=creator.headers)
    assert response.status_code == 200

    again = await gifts.redeem(first, used["code"])
    assert again.status_code == 409 and again.json()["message"] == "You already redeemed this gift"
    other = await gifts.redeem(second, used["code"])
    assert other.status_code == 409 and other.json()["code"] == "gift_already_redeemed"
    gone = await gifts.redeem(second, cancelled["code"])
    assert gone.status_code == 409 and gone.json()["code"] == "gift_cancelled"
    assert "cancelled" in gone.json()["message"]

    ctx.clock.advance(timedelta(days=91))
    late = await gifts.redeem(second, expiring["code"])
    assert late.status_code == 410 and late.json()["code"] == "gift_expired"
    assert (await gifts.client.get(f"/api/v1/gifts/{expiring['code']}")).json()["status"] == "expired"
    assert await gifts.balance(second) == 0


async def test_redeem_is_idempotent(gifts: Gifts, api: Api, db: asyncpg.Connection) -> None:
    creator = await gifts.creator()
    gift = await gifts.create(creator, 33)
    friend = api.actor()
    first = await gifts.redeem(friend, gift["code"], headers={"Idempotency-Key": "redeem-1"})
    again = await gifts.redeem(friend, gift["code"], headers={"Idempotency-Key": "redeem-1"})
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert await gifts.balance(friend) == 33
    assert len(await gift_ledger(db, gift["id"])) == 2


async def test_bad_redeem_body_is_400(gifts: Gifts, api: Api) -> None:
    creator = await gifts.creator()
    gift = await gifts.create(creator, 5)
    friend = api.actor()
    for body in (b"{not json", b'{"sourceAppId": 7}', b"[]"):
        response = await gifts.client.post(
            f"/api/v1/gifts/{gift['code']}/redeem",
            content=body,
            headers={**friend.headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "validation_error"
    assert (await gifts.redeem(friend, gift["code"])).status_code == 200


# ---- redeem-pending (mana-auth at registration) ----


async def pending(client: httpx.AsyncClient, user_id: str, email: str) -> httpx.Response:
    return await client.post(
        "/api/v1/internal/gifts/redeem-pending",
        json={"userId": user_id, "email": email},
        headers=service_headers("mana-auth"),
    )


async def test_redeem_pending_redeems_every_matching_gift(
    gifts: Gifts, api: Api, ctx: AppContext, db: asyncpg.Connection
) -> None:
    email = f"new-{api.actor().id}@example.com"
    creator = await gifts.creator(1000)
    for total in (10, 20, 30):
        await gifts.create(creator, total, type="personalized", targetEmail=email.upper())
    await gifts.create(creator, 40, type="personalized", targetEmail=f"other-{email}")
    await gifts.create(creator, 50)
    expired = await gifts.create(creator, 60, type="personalized", targetEmail=email, expirationDays=1)
    ctx.clock.advance(timedelta(days=2))
    newcomer = api.actor(email=email)

    response = await pending(gifts.client, newcomer.id, email)
    assert response.status_code == 200, response.text
    assert response.json() == {"redeemed": 3, "totalCredits": 60}
    assert await gifts.balance(newcomer) == 60
    assert (await pending(gifts.client, newcomer.id, email)).json() == {"redeemed": 0, "totalCredits": 0}
    received = (await gifts.client.get("/api/v1/gifts/me/received", headers=newcomer.headers)).json()
    assert sorted(item["creditsReceived"] for item in received) == [10, 20, 30]
    assert await gift_ledger(db, expired["id"]) == [(creator.id, "gift", -60)]
    await assert_audit_clean(ctx)


async def test_redeem_pending_twice_at_once_redeems_each_gift_once(
    gifts: Gifts, api: Api, ctx: AppContext, db: asyncpg.Connection
) -> None:
    email = f"race-{api.actor().id}@example.com"
    creators = [await gifts.creator(100) for _ in range(3)]
    created = [
        await gifts.create(creator, 25, type="personalized", targetEmail=email)
        for creator in creators
        for _ in range(2)
    ]
    newcomer = api.actor(email=email)

    responses = await asyncio.gather(*(pending(gifts.client, newcomer.id, email) for _ in range(4)))
    assert all(response.status_code == 200 for response in responses)
    assert sum(response.json()["redeemed"] for response in responses) == 6
    assert sum(response.json()["totalCredits"] for response in responses) == 150
    assert await gifts.balance(newcomer) == 150
    for gift in created:
        credits = [row for row in await gift_ledger(db, gift["id"]) if row[0] == newcomer.id]
        assert credits == [(newcomer.id, "gift", 25)]
    await assert_audit_clean(ctx)


async def test_redeem_pending_needs_the_service_key(gifts: Gifts) -> None:
    response = await gifts.client.post(
        "/api/v1/internal/gifts/redeem-pending", json={"userId": "x", "email": "x@example.com"}
    )
    assert response.status_code == 401
    bad = await gifts.client.post(
        "/api/v1/internal/gifts/redeem-pending", json={"userId": "x"}, headers=service_headers()
    )
    assert bad.status_code == 400
