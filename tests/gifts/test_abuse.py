"""One user must not break gifts for everybody: totals that cannot overflow, a cancel that is a refund,
an expiry sweep that isolates each gift, and a per-user limit on creating and cancelling gifts.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from mana_credits.context import AppContext
from mana_credits.gifts import ratelimit, tasks
from tests.gifts.conftest import Gifts, assert_audit_clean, ledger_rows, make_gift
from tests.support import Api

INT32_MAX = 2**31 - 1
FromIp = Callable[[str | None], AbstractAsyncContextManager[httpx.AsyncClient]]


async def test_balance_totals_are_bigint(db: asyncpg.Connection) -> None:
    types = await db.fetch(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'credits' AND table_name = 'balances' AND column_name LIKE 'total_%'"
    )
    assert {row["column_name"]: row["data_type"] for row in types} == {
        "total_earned": "bigint",
        "total_spent": "bigint",
    }


async def test_totals_past_32_bits_keep_working(gifts: Gifts, db: asyncpg.Connection) -> None:
    """Years of create/cancel cycles: the totals grow past 2^31, the account keeps working."""
    creator = await gifts.creator(1000)
    await db.execute(
        "UPDATE credits.balances SET total_earned = total_earned + $2, total_spent = total_spent + $2 "
        "WHERE user_id = $1",
        creator.id,
        INT32_MAX - 500,
    )
    try:
        gift = await gifts.create(creator, 800)
        cancel = await gifts.client.delete(f"/api/v1/gifts/{gift['id']}", headers=creator.headers)
        assert cancel.status_code == 200, cancel.text
        await gifts.create(creator, 900)
        assert await gifts.api.balance(creator) == {
            "balance": 100,
            "totalEarned": INT32_MAX - 500 + 1000,
            "totalSpent": INT32_MAX - 500 + 900,
            "reserved": 0,
        }
    finally:  # the shared database's audit must stay clean for the other tests
        await db.execute(
            "UPDATE credits.balances SET total_earned = total_earned - $2, total_spent = total_spent - $2 "
            "WHERE user_id = $1",
            creator.id,
            INT32_MAX - 500,
        )


async def test_cancel_is_a_refund_in_the_totals(
    gifts: Gifts, ctx: AppContext, db: asyncpg.Connection
) -> None:
    creator = await gifts.creator(200)
    for _ in range(3):
        gift = await gifts.create(creator, 80)
        response = await gifts.client.delete(f"/api/v1/gifts/{gift['id']}", headers=creator.headers)
        assert response.status_code == 200, response.text
    # Cycles move nothing: the grant is all that was earned, nothing stays spent.
    assert await gifts.api.balance(creator) == {
        "balance": 200,
        "totalEarned": 200,
        "totalSpent": 0,
        "reserved": 0,
    }
    assert [(r["type"], r["amount"]) for r in await ledger_rows(db, creator.id)][-2:] == [
        ("gift", -80),
        ("refund", 80),
    ]
    await assert_audit_clean(ctx)


async def test_expiry_refund_is_a_refund_in_the_totals(own_pool: asyncpg.Pool) -> None:
    async with own_pool.acquire() as conn:
        await make_gift(conn, "creator", 70, expired=True)
        await tasks.sweep(own_pool, datetime.now(UTC))
        row = await conn.fetchrow(
            "SELECT balance, total_earned, total_spent FROM credits.balances WHERE user_id = 'creator'"
        )
        assert row is not None and dict(row) == {"balance": 70, "total_earned": 70, "total_spent": 0}


async def test_one_broken_account_does_not_stop_everybody_elses_expiry(own_pool: asyncpg.Pool) -> None:
    async with own_pool.acquire() as conn:
        await make_gift(conn, "a-damaged", 70, expired=True)
        await make_gift(conn, "b-good", 30, expired=True)
        await make_gift(conn, "c-good", 40, expired=True)
        # Damage: a balance at the edge of its column (as an adopted row could be); its refund must fail.
        await conn.execute(
            "UPDATE credits.balances SET balance = $1 WHERE user_id = 'a-damaged'", INT32_MAX - 10
        )

    result = await tasks.sweep(own_pool, datetime.now(UTC), batch=2)

    assert (result.expired, result.refunded_credits) == (2, 70)
    async with own_pool.acquire() as conn:
        statuses = await conn.fetch("SELECT creator_id, status::text FROM gifts.gift_codes ORDER BY 1")
        assert [tuple(row) for row in statuses] == [
            ("a-damaged", "active"),  # left for a later sweep, with its credits still owed
            ("b-good", "expired"),
            ("c-good", "expired"),
        ]
        balances = await conn.fetch(
            "SELECT user_id, balance FROM credits.balances WHERE user_id LIKE '%good'"
        )
        assert sorted(tuple(row) for row in balances) == [("b-good", 30), ("c-good", 40)]


async def test_the_internal_sweep_answers_200_past_a_broken_account(
    gifts: Gifts, api: Api, ctx: AppContext, db: asyncpg.Connection
) -> None:
    from tests.support import service_headers

    broken = await gifts.creator(100)
    fine = await gifts.creator(100)
    await gifts.create(broken, 50, expirationDays=1)
    await gifts.create(fine, 60, expirationDays=1)
    await db.execute("UPDATE credits.balances SET balance = $1 WHERE user_id = $2", INT32_MAX - 10, broken.id)
    ctx.clock.advance(timedelta(days=2))
    response = await gifts.client.post("/api/v1/internal/gifts/expire", headers=service_headers())
    assert response.status_code == 200, response.text
    assert await gifts.balance(fine) == 100
    await db.execute("UPDATE credits.balances SET balance = 50 WHERE user_id = $1", broken.id)


async def test_gift_create_and_cancel_are_rate_limited_per_user(gifts: Gifts, api: Api) -> None:
    creator = await gifts.creator(100_000)
    statuses: Counter[int] = Counter()
    for _ in range(ratelimit.WRITE_LIMIT // 2 + 1):
        response = await gifts.client.post("/api/v1/gifts", json={"totalCredits": 1}, headers=creator.headers)
        statuses[response.status_code] += 1
        if response.status_code == 201:
            cancel = await gifts.client.delete(
                f"/api/v1/gifts/{response.json()['id']}", headers=creator.headers
            )
            statuses[cancel.status_code] += 1
    assert statuses[429] >= 1
    assert statuses[200] + statuses[201] == ratelimit.WRITE_LIMIT
    # Another user is not affected.
    other = await gifts.creator(10)
    assert (
        await gifts.client.post("/api/v1/gifts", json={"totalCredits": 1}, headers=other.headers)
    ).status_code == 201


async def test_refused_redeems_are_limited_per_user_not_per_ip(
    gifts: Gifts, api: Api, db: asyncpg.Connection, from_ip: FromIp
) -> None:
    creator = await gifts.creator(100)
    gift = await gifts.create(creator, 10)
    async with from_ip(None) as client:
        statuses = Counter(
            [(await gifts.redeem(creator, gift["code"], client)).status_code for _ in range(40)]
        )
        assert statuses == {400: ratelimit.LIMIT, 429: 40 - ratelimit.LIMIT}, statuses
        rows = await db.fetchval(
            "SELECT count(*) FROM gifts.gift_redemptions WHERE gift_code_id = $1", uuid.UUID(gift["id"])
        )
        assert rows == ratelimit.LIMIT
        # Someone else behind the same address is not locked out.
        assert (await gifts.redeem(api.actor(), gift["code"], client)).status_code == 200
