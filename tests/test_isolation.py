"""The code relies on READ COMMITTED (conditional updates re-checked after a wait, idempotency keys seen
once committed). A database or role may default to another level; the service must not inherit it."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable

import asyncpg
import httpx

from mana_credits.app import create_app
from mana_credits.db.pool import connect, create_pool
from tests.conftest import LiveServer, make_settings
from tests.support import Api, JwksServer, service_headers


async def _serializable_database(fresh_database: Callable[[], Awaitable[str]]) -> str:
    url = await fresh_database()
    conn = await asyncpg.connect(url)
    try:
        name = await conn.fetchval("SELECT current_database()")
        await conn.execute(f"ALTER DATABASE \"{name}\" SET default_transaction_isolation = 'serializable'")
    finally:
        await conn.close()
    return url


async def test_transactions_run_read_committed_whatever_the_database_default(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    url = await _serializable_database(fresh_database)
    pool = await create_pool(url, size=2)
    try:
        async with pool.acquire() as pooled, pooled.transaction():
            assert await pooled.fetchval("SHOW transaction_isolation") == "read committed"
    finally:
        await pool.close()
    conn = await connect(url)
    try:
        async with conn.transaction():
            assert await conn.fetchval("SHOW transaction_isolation") == "read committed"
    finally:
        await conn.close()


async def test_concurrent_duplicates_never_500_on_a_serializable_database(
    fresh_database: Callable[[], Awaitable[str]], jwks: JwksServer
) -> None:
    url = await _serializable_database(fresh_database)
    server = LiveServer(create_app(make_settings(url, jwks)))
    base = await server.start()
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            api = Api(client, jwks)
            user = api.actor()
            await api.fund(user.id, 1000)
            for _ in range(5):
                headers = {**user.headers, "Idempotency-Key": str(uuid.uuid4())}
                body = {"amount": 1, "appId": "chat", "description": "x"}
                responses = await asyncio.gather(
                    *(client.post("/api/v1/credits/use", json=body, headers=headers) for _ in range(10))
                )
                assert Counter(r.status_code for r in responses) == {200: 10}, [r.text for r in responses]
                grant = {"userId": "granted", "amount": 5, "reason": "r", "referenceId": "same"}
                grants = [
                    client.post("/api/v1/internal/credits/grant", json=grant, headers=service_headers())
                    for _ in range(10)
                ]
                assert all(r.status_code < 500 for r in await asyncio.gather(*grants))
            assert (await api.balance(user))["balance"] == 995
    finally:
        await server.stop()
