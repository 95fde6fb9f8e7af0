"""Cancelling refunds the creator once; expired gifts are refunded once by the sweep, however many run."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import asyncpg

from mana_credits import ledger
from mana_credits.context import AppContext
from mana_credits.gifts import tasks
from mana_credits.ledger.audit import audit
from tests.gifts.conftest import Gifts, assert_audit_clean, ledger_rows, make_gift
from tests.support import Api, service_headers


async def test_cancel_refunds_the_creator(gifts: Gifts, ctx: AppContext, db: asyncpg.Connection) -> None:
    creator = await gifts.creator(200)
    gift = await gifts.create(creator, 80)
    assert await gifts.balance(creator) == 120

    response = await gifts.client.delete(f"/api/v1/gifts/{gift['id']}", headers=creator.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "refundedCredits": 80}
    assert await gifts.balance(creator) == 200
    assert [(r["type"], r["amount"]) for r in await ledger_rows(db, creator.id)] == [
        ("grant", 200),
        ("gift", -80),
        ("refund", 80),
    ]
    again = await gifts.client.delete(f"/api/v1/gifts/{gift['id']}", headers=creator.headers)
    assert again.status_code == 409 and again.json()["message"] == "This gift is already cancelled"
    assert (await gifts.client.get(f"/api/v1/gifts/{gift['code']}")).json()["status"] == "cancelled"
    await assert_audit_clean(ctx)


async def test_cancel_after_redeem_is_refused(gifts: Gifts, api: Api) -> None:
    creator = await gifts.creator(200)
    gift = await gifts.create(creator, 80)
    assert (await gifts.redeem(api.actor(), gift["code"])).status_code == 200

    response = await gifts.client.delete(f"/api/v1/gifts/{gift['id']}", headers=creator.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "gift_not_cancellable"
    assert response.json()["message"] == "This gift has already been redeemed"
    assert await gifts.balance(creator) == 120


async def test_an_expired_gift_is_not_cancellable_even_before_the_sweep(
    gifts: Gifts, ctx: AppContext, db: asyncpg.Connection
) -> None:
    creator = await gifts.creator(200)
    gift = await gifts.create(creator, 80, expirationDays=1)
    ctx.clock.advance(timedelta(days=2))
    response = await gifts.client.delete(f"/api/v1/gifts/{gift['id']}", headers=creator.headers)
    assert response.status_code == 409 and response.json()["details"] == {"status": "expired"}
    assert await gifts.balance(creator) == 120
    # The sweep gives the credits back, once, as an expiry.
    await tasks.sweep(ctx.pool, ctx.clock.now())
    assert await gifts.balance(creator) == 200
    assert [(r["type"], r["amount"]) for r in await ledger_rows(db, creator.id)][-1] == ("expiry", 80)
    await assert_audit_clean(ctx)


async def test_concurrent_cancels_refund_once(gifts: Gifts, ctx: AppContext) -> None:
    creator = await gifts.creator(100)
    gift = await gifts.create(creator, 60)
    responses = await asyncio.gather(
        *(gifts.client.delete(f"/api/v1/gifts/{gift['id']}", headers=creator.headers) for _ in range(8))
    )
    assert Counter(r.status_code for r in responses) == {200: 1, 409: 7}
    assert await gifts.balance(creator) == 100
    await assert_audit_clean(ctx)


async def test_cancel_is_idempotent(gifts: Gifts) -> None:
    creator = await gifts.creator(100)
    gift = await gifts.create(creator, 60)
    headers = {**creator.headers, "Idempotency-Key": "cancel-1"}
    first = await gifts.client.delete(f"/api/v1/gifts/{gift['id']}", headers=headers)
    again = await gifts.client.delete(f"/api/v1/gifts/{gift['id']}", headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await gifts.balance(creator) == 100


async def test_cancel_only_own_gift_by_uuid(gifts: Gifts, api: Api) -> None:
    creator = await gifts.creator(100)
    gift = await gifts.create(creator, 60)
    other = api.actor()
    foreign = await gifts.client.delete(f"/api/v1/gifts/{gift['id']}", headers=other.headers)
    assert foreign.status_code == 404
    bad = await gifts.client.delete("/api/v1/gifts/not-a-uuid", headers=creator.headers)
    assert bad.status_code == 400 and bad.json()["code"] == "validation_error"
    unknown = await gifts.client.delete(f"/api/v1/gifts/{uuid.uuid4()}", headers=creator.headers)
    assert unknown.status_code == 404
    assert await gifts.balance(creator) == 40


async def test_expiry_sweep_via_internal_route_refunds_once(
    gifts: Gifts, api: Api, ctx: AppContext, db: asyncpg.Connection
) -> None:
    creator = await gifts.creator(500)
    short = await gifts.create(creator, 70, expirationDays=1)
    long = await gifts.create(creator, 30, expirationDays=30)
    redeemed = await gifts.create(creator, 20, expirationDays=1)
    assert (await gifts.redeem(api.actor(), redeemed["code"])).status_code == 200

    ctx.clock.advance(timedelta(days=2))
    responses = await asyncio.gather(
        *(gifts.client.post("/api/v1/internal/gifts/expire", headers=service_headers()) for _ in range(2))
    )
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    # Other tests' expired gifts may be swept too; this creator's gift is refunded exactly once.
    assert sum(r.json()["expired"] for r in responses) >= 1
    assert await gifts.balance(creator) == 500 - 30 - 20
    refunds = [(r["type"], r["amount"]) for r in await ledger_rows(db, creator.id) if r["amount"] > 0]
    assert refunds == [("grant", 500), ("expiry", 70)]

    created = (await gifts.client.get("/api/v1/gifts/me/created", headers=creator.headers)).json()
    assert {g["id"]: g["status"] for g in created} == {
        short["id"]: "expired",
        long["id"]: "active",
        redeemed["id"]: "depleted",
    }
    cancel = await gifts.client.delete(f"/api/v1/gifts/{short['id']}", headers=creator.headers)
    assert cancel.status_code == 409
    await assert_audit_clean(ctx)


async def test_concurrent_sweeps_on_a_whole_database_refund_each_gift_once(own_pool: asyncpg.Pool) -> None:
    creators = [f"c-{i}" for i in range(9)]
    async with own_pool.acquire() as conn:
        for n in range(45):
            await make_gift(conn, creators[n % 9], 10 + n, expired=False)

    later = datetime.now(UTC) + timedelta(days=1, seconds=1)
    results = await asyncio.gather(*(tasks.sweep(own_pool, later, batch=5) for _ in range(3)))

    assert sum(r.expired for r in results) == 45
    assert sum(r.refunded_credits for r in results) == sum(10 + n for n in range(45))
    async with own_pool.acquire() as conn:
        statuses = await conn.fetch("SELECT status::text, count(*) FROM gifts.gift_codes GROUP BY 1")
        assert {row["status"]: row["count"] for row in statuses} == {"expired": 45}
        expiry_rows = await conn.fetch(
            "SELECT metadata->>'giftCodeId' AS gift FROM credits.transactions WHERE type = 'expiry'"
        )
        assert len(expiry_rows) == len({row["gift"] for row in expiry_rows}) == 45
        for i, creator in enumerate(creators):
            given = sum(10 + n for n in range(45) if n % 9 == i)
            assert (await ledger.get_balance(conn, creator)).balance == given
        assert await audit(conn) == []
    assert (await tasks.sweep(own_pool, later)).expired == 0


async def test_redeem_and_cancel_at_once_one_wins(gifts: Gifts, api: Api, ctx: AppContext) -> None:
    for _ in range(5):
        creator = await gifts.creator(100)
        gift = await gifts.create(creator, 100)
        friend = api.actor()
        redeemed, cancelled = await asyncio.gather(
            gifts.redeem(friend, gift["code"]),
            gifts.client.delete(f"/api/v1/gifts/{gift['id']}", headers=creator.headers),
        )
        assert sorted([redeemed.status_code, cancelled.status_code]) == [200, 409]
        # The 100 credits exist exactly once: with the friend or back with the creator.
        assert await gifts.balance(friend) + await gifts.balance(creator) == 100
    await assert_audit_clean(ctx)
