"""Balance reads (`GET /credits/balance`) of concurrent callers share one query (kit.batching): each caller
still gets its own account, and a user without a row gets zeros (and a row, as before)."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.support import Api


async def test_concurrent_balance_reads_each_get_their_own_account(api: Api, db: asyncpg.Connection) -> None:
    funded = [api.actor() for _ in range(30)]
    for n, actor in enumerate(funded, start=1):
        await api.fund(actor.id, n)
    newcomer = api.actor()
    readers = [*funded, newcomer] * 3
    answers = await asyncio.gather(
        *[api.client.get("/api/v1/credits/balance", headers=a.headers) for a in readers]
    )
    assert all(r.status_code == 200 for r in answers)
    for actor, answer in zip(readers, answers, strict=True):
        n = funded.index(actor) + 1 if actor in funded else 0
        assert answer.json() == {"balance": n, "totalEarned": n, "totalSpent": 0, "reserved": 0}
    assert await db.fetchval("SELECT balance FROM credits.balances WHERE user_id = $1", newcomer.id) == 0
