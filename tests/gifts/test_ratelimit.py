"""Guessing codes: the 11th unknown code in a minute is refused, per client IP and per user."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta

import httpx

from mana_credits.context import AppContext
from tests.gifts.conftest import Gifts, random_ip
from tests.support import Api

FromIp = Callable[[str | None], AbstractAsyncContextManager[httpx.AsyncClient]]


def unknown(n: int) -> str:
    return f"QQQQQ{n:03d}".replace("0", "A").replace("1", "B")


async def test_eleventh_failed_lookup_in_a_minute_is_429(
    gifts: Gifts, ctx: AppContext, from_ip: FromIp
) -> None:
    creator = await gifts.creator()
    gift = await gifts.create(creator, 10)
    async with from_ip(None) as client:
        for n in range(10):
            assert (await client.get(f"/api/v1/gifts/{unknown(n)}")).status_code == 404
        blocked = await client.get(f"/api/v1/gifts/{unknown(10)}")
        assert blocked.status_code == 429
        assert blocked.json()["code"] == "rate_limited"
        assert 1 <= int(blocked.headers["Retry-After"]) <= 60
        # While blocked, even a real code is refused: a guess that hits must not be told apart.
        assert (await client.get(f"/api/v1/gifts/{gift['code']}")).status_code == 429

        ctx.clock.advance(timedelta(seconds=61))
        assert (await client.get(f"/api/v1/gifts/{gift['code']}")).status_code == 200
        assert (await client.get(f"/api/v1/gifts/{unknown(11)}")).status_code == 404


async def test_found_codes_do_not_count(gifts: Gifts, from_ip: FromIp) -> None:
    creator = await gifts.creator()
    gift = await gifts.create(creator, 10)
    async with from_ip(None) as client:
        for _ in range(15):
            assert (await client.get(f"/api/v1/gifts/{gift['code']}")).status_code == 200


async def test_failed_redeems_are_limited_per_user_across_ips(
    gifts: Gifts, api: Api, from_ip: FromIp
) -> None:
    guesser, bystander = api.actor(), api.actor()
    creator = await gifts.creator()
    gift = await gifts.create(creator, 10)
    async with from_ip(None) as first, from_ip(None) as second:
        for n in range(10):
            assert (await gifts.redeem(guesser, unknown(n), first)).status_code == 404
        moved = await gifts.redeem(guesser, gift["code"], second)
        assert moved.status_code == 429 and "Retry-After" in moved.headers
        # The second address is clean: someone else redeems from it.
        assert (await gifts.redeem(bystander, gift["code"], second)).status_code == 200


async def test_failed_redeems_are_limited_per_ip_across_users(
    gifts: Gifts, api: Api, from_ip: FromIp
) -> None:
    async with from_ip(random_ip()) as client:
        for n in range(10):
            assert (await gifts.redeem(api.actor(), unknown(n), client)).status_code == 404
        assert (await gifts.redeem(api.actor(), unknown(10), client)).status_code == 429


async def test_a_burst_of_parallel_guesses_gets_at_most_ten_answers(gifts: Gifts, from_ip: FromIp) -> None:
    async with from_ip(None) as client:
        responses = await asyncio.gather(*(client.get(f"/api/v1/gifts/{unknown(n)}") for n in range(30)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses[404] <= 10 and statuses[404] + statuses[429] == 30
    assert statuses[429] >= 20
