"""Helpers for the gift tests: funded creators, gifts made over the real API, clients from other IPs."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from mana_credits import ledger
from mana_credits.auth.models import AuthUser
from mana_credits.context import AppContext
from mana_credits.db.pool import Conn, create_pool
from mana_credits.gifts import service
from mana_credits.gifts.schemas import CreateGift
from mana_credits.ledger.audit import audit
from mana_credits.ledger.schemas import TxType
from tests.support import Actor, Api


class Gifts:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.client = api.client

    async def creator(self, funds: int = 1000, **actor: Any) -> Actor:
        user = self.api.actor(**actor)
        await self.api.fund(user.id, funds)
        return user

    async def create(self, creator: Actor, total: int = 100, **body: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/gifts", json={"totalCredits": total, **body}, headers=creator.headers
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def redeem(
        self,
        user: Actor,
        code: str,
        client: httpx.AsyncClient | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        return await (client or self.client).post(
            f"/api/v1/gifts/{code}/redeem", headers={**user.headers, **(headers or {})}
        )

    async def balance(self, user: Actor) -> int:
        return (await self.api.balance(user))["balance"]


@pytest.fixture
def gifts(api: Api) -> Gifts:
    return Gifts(api)


async def ledger_rows(conn: asyncpg.Connection, user_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT type::text, amount, metadata FROM credits.transactions WHERE user_id = $1 "
        "ORDER BY created_at, id",
        user_id,
    )


async def assert_audit_clean(ctx: AppContext) -> None:
    async with ctx.pool.acquire() as conn:
        assert await audit(conn) == []


@pytest.fixture
def from_ip(base_url: str) -> Callable[[str | None], AbstractAsyncContextManager[httpx.AsyncClient]]:
    """A client whose requests come from another loopback address (all of 127/8 is local on Linux)."""

    @asynccontextmanager
    async def open_client(ip: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
        address = ip or random_ip()
        transport = httpx.AsyncHTTPTransport(local_address=address)
        async with httpx.AsyncClient(base_url=base_url, transport=transport, timeout=60) as client:
            yield client

    return open_client


def random_ip() -> str:
    return f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


@pytest.fixture
async def own_url(fresh_database: Callable[[], Awaitable[str]]) -> str:
    """A new, empty database: for sweeps, which act on every row."""
    return await fresh_database()


@pytest.fixture
async def own_pool(own_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(own_url, size=6)
    yield pool
    await pool.close()


async def make_gift(conn: Conn, creator_id: str, total: int, *, expired: bool) -> None:
    """Fund `creator_id` and create a 1-day gift through the service, as if made yesterday if `expired`."""
    await ledger.credit(conn, creator_id, total, type=TxType.GRANT, app_id="t", description="fund")
    made = datetime.now(UTC) - timedelta(days=2 if expired else 0)
    async with conn.transaction():
        await service.create(
            conn, user=AuthUser(id=creator_id, email=None, name=None, role="user"),
            data=CreateGift(total_credits=total, expiration_days=1), base_url="https://mana.test",
            code_length=8, now=made, idempotency_key=None,
        )  # fmt: skip
