"""CreditsClient against the real service on a loopback port."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from mana_credits.client import (
    AuthError,
    CreditsClient,
    CreditsError,
    CreditsUnavailable,
    InsufficientCredits,
)
from mana_credits.ledger.audit import audit
from tests.client.conftest import DroppingProxy
from tests.support import SERVICE_KEY, Api


async def _usage(db: asyncpg.Connection, user_id: str) -> list[int]:
    rows = await db.fetch(
        "SELECT amount FROM credits.transactions WHERE user_id = $1 AND type = 'usage' ORDER BY created_at",
        user_id,
    )
    return [row["amount"] for row in rows]


async def test_reserve_10_commit_7(credits_client: CreditsClient, api: Api, db: asyncpg.Connection) -> None:
    user = api.actor()
    await api.fund(user.id, 100)
    async with credits_client.reserve(user.id, 10, "chat completion") as hold:
        assert hold.balance == 90
        assert (await credits_client.balance(user.id)).reserved == 10
        hold.actual = 7
    after = await credits_client.balance(user.id)
    assert (after.balance, after.reserved, after.total_spent) == (100 - 7, 0, 7)
    assert await _usage(db, user.id) == [-7]
    assert await audit(db) == []


async def test_reserve_commits_full_amount_by_default(
    credits_client: CreditsClient, api: Api, db: asyncpg.Connection
) -> None:
    user = api.actor()
    await api.fund(user.id, 30)
    async with credits_client.reserve(user.id, 12, "image generation", ttl_seconds=60) as hold:
        hold.description = "image 1024x1024"
    assert (await credits_client.balance(user.id)).balance == 18
    assert await _usage(db, user.id) == [-12]


async def test_reserve_releases_on_exception(
    credits_client: CreditsClient, api: Api, db: asyncpg.Connection
) -> None:
    user = api.actor()
    await api.fund(user.id, 50)

    class ModelFailed(Exception):
        pass

    with pytest.raises(ModelFailed):
        async with credits_client.reserve(user.id, 20, "deep research"):
            raise ModelFailed
    after = await credits_client.balance(user.id)
    assert (after.balance, after.reserved, after.total_spent) == (50, 0, 0)
    assert await _usage(db, user.id) == []
    statuses = await db.fetch("SELECT status::text FROM credits.reservations WHERE user_id = $1", user.id)
    assert [row["status"] for row in statuses] == ["refunded"]


async def test_hold_actual_is_bounded(credits_client: CreditsClient, api: Api) -> None:
    user = api.actor()
    await api.fund(user.id, 10)
    with pytest.raises(ValueError):
        async with credits_client.reserve(user.id, 5, "x") as hold:
            hold.actual = 6
    assert (await credits_client.balance(user.id)).balance == 10


async def test_reserve_insufficient(credits_client: CreditsClient, api: Api) -> None:
    user = api.actor()
    await api.fund(user.id, 3)
    with pytest.raises(InsufficientCredits) as raised:
        async with credits_client.reserve(user.id, 5, "x"):
            pytest.fail("the body must not run without a hold")
    assert (raised.value.required, raised.value.available) == (5, 3)


async def test_consume_refund_grant(credits_client: CreditsClient, api: Api, db: asyncpg.Connection) -> None:
    user = api.actor()
    reference = str(uuid.uuid4())
    granted = await credits_client.grant(user.id, 40, "welcome bonus", reference)
    assert (granted.balance, granted.already_granted) == (40, False)
    again = await credits_client.grant(user.id, 40, "welcome bonus", reference)
    assert (again.balance, again.already_granted) == (40, True)

    charge = await credits_client.consume(user.id, 15, "chat", metadata={"model": "gpt-4"})
    assert charge.balance == 25
    refund = await credits_client.refund(user.id, 5, "partial answer", transaction_id=charge.transaction_id)
    assert refund.balance == 30
    with pytest.raises(CreditsError) as too_much:
        await credits_client.refund(user.id, 11, "too much", transaction_id=charge.transaction_id)
    assert too_much.value.status == 409

    with pytest.raises(InsufficientCredits) as raised:
        await credits_client.consume(user.id, 31, "too expensive")
    assert (raised.value.required, raised.value.available) == (31, 30)
    balance = await credits_client.balance(user.id)
    assert (balance.balance, balance.total_earned, balance.total_spent) == (30, 40, 10)
    assert await audit(db) == []


async def test_consume_with_same_key_charges_once(credits_client: CreditsClient, api: Api) -> None:
    user = api.actor()
    await api.fund(user.id, 20)
    key = f"op-{uuid.uuid4()}"
    first = await credits_client.consume(user.id, 5, "chat", idempotency_key=key)
    second = await credits_client.consume(user.id, 5, "chat", idempotency_key=key)
    assert (first.replayed, second.replayed) == (False, True)
    assert first.transaction_id == second.transaction_id
    assert (await credits_client.balance(user.id)).balance == 15


async def test_retry_after_dropped_response_does_not_double_charge(
    dropping_proxy: tuple[DroppingProxy, str], api: Api, db: asyncpg.Connection
) -> None:
    proxy, url = dropping_proxy
    user = api.actor()
    await api.fund(user.id, 20)
    async with CreditsClient(url, SERVICE_KEY, "chat", retries=2, backoff=0.01) as client:
        proxy.drop = ["/credits/use"]
        charge = await client.consume(user.id, 7, "chat")
        assert proxy.dropped == ["/credits/use"]  # the first response really was lost
        assert charge.replayed is True
        assert charge.balance == 13
        # The same for a hold: the reserve's and the commit's first responses are lost too.
        proxy.drop = ["/credits/reserve", "/credits/commit"]
        async with client.reserve(user.id, 5, "x") as hold:
            hold.actual = 2
    assert proxy.dropped == ["/credits/use", "/credits/reserve", "/credits/commit"]
    assert await _usage(db, user.id) == [-7, -2]
    reservations = await db.fetch("SELECT status::text FROM credits.reservations WHERE user_id = $1", user.id)
    assert [row["status"] for row in reservations] == ["committed"]
    assert await api.balance(user) == {"balance": 11, "totalEarned": 20, "totalSpent": 9, "reserved": 0}
    assert await audit(db) == []


async def test_wrong_key_is_auth_error(base_url: str, api: Api) -> None:
    async with CreditsClient(base_url, "wrong-key", "chat") as client:
        with pytest.raises(AuthError) as raised:
            await client.consume(api.actor().id, 1, "x")
    assert raised.value.status == 401


async def test_unreachable_service_raises_never_fails_open(black_hole: tuple[object, str], api: Api) -> None:
    _, url = black_hole
    async with CreditsClient(url, SERVICE_KEY, "chat", timeout=0.2, retries=1, backoff=0.01) as client:
        with pytest.raises(CreditsUnavailable):
            await client.balance(api.actor().id)
        with pytest.raises(CreditsUnavailable):
            await client.consume(api.actor().id, 1, "x")
