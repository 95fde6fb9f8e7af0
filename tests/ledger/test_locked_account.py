"""One locked account does not stall the group commit (issue #23 item 3): with an account's balance row
held FOR UPDATE by another session (a renewal batch, the gift sweep, an erasure, a stuck session), other
accounts' keyless debits through the same worker still answer at once; the locked account's debit waits
for the lock the single-debit way and is applied exactly once when it is released."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx

from mana_credits.config import Settings
from mana_credits.db.pool import connect, create_pool
from mana_credits.ledger.audit import audit
from mana_credits.ledger.group import GroupCommit, UsageDebit
from tests.support import SERVICE_KEY, Api

USE = "/api/v1/internal/credits/use"
HEADERS = {"X-Service-Key": SERVICE_KEY, "X-App-Id": "chat"}
LOCK_SECONDS = 6.0
# Generous for a noisy 2-core machine; before the fix these debits waited out the whole lock (4.5 s of 6).
BOUND_SECONDS = 3.0


async def test_other_accounts_debits_stay_fast_while_one_balance_row_is_locked(
    api: Api, base_url: str, settings: Settings, db: asyncpg.Connection
) -> None:
    locked, others = api.actor(), [api.actor() for _ in range(4)]
    for user in (locked, *others):
        await api.fund(user.id, 100)

    def post(user_id: str, description: str) -> asyncio.Task[httpx.Response]:
        body = {"userId": user_id, "amount": 1, "appId": "chat", "description": description}
        return asyncio.create_task(http.post(USE, json=body, headers=HEADERS))

    assert settings.DATABASE_URL is not None
    holder = await connect(settings.DATABASE_URL)  # another session, as a renewal run would hold it
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
        lock = holder.transaction()
        await lock.start()
        try:
            await holder.execute("SELECT 1 FROM credits.balances WHERE user_id = $1 FOR UPDATE", locked.id)
            started = time.monotonic()
            waiting = [post(locked.id, "locked")]
            await asyncio.sleep(0.3)  # its batch is out, waiting on the row (before the fix)
            for wave in range(3):  # the next batches, with another debit of the locked account in each
                waiting.append(post(locked.id, f"locked {wave}"))
                begun = time.monotonic()
                answers = await asyncio.gather(*[post(u.id, f"{wave}") for u in others * 3])
                assert time.monotonic() - begun < BOUND_SECONDS, f"wave {wave} waited on the locked row"
                assert [a.status_code for a in answers] == [200] * len(answers)
            await asyncio.sleep(max(0.0, LOCK_SECONDS - (time.monotonic() - started)))
            assert not any(task.done() for task in waiting)  # they wait for the lock
        finally:
            await lock.rollback()
            await holder.close()
        answered = await asyncio.gather(*waiting)
    assert [r.status_code for r in answered] == [200] * 4
    rows = await db.fetch(
        "SELECT id, description FROM credits.transactions WHERE user_id = $1 AND type = 'usage'", locked.id
    )
    assert sorted(r["description"] for r in rows) == ["locked", "locked 0", "locked 1", "locked 2"]
    assert {str(r["id"]) for r in rows} == {r.json()["transaction"]["id"] for r in answered}
    assert (await api.balance(locked))["balance"] == 96
    for user in others:
        assert (await api.balance(user))["balance"] == 91  # three debits in each of three waves
    assert await audit(db) == []


async def test_the_batches_lock_timeout_stays_with_the_group_commit(
    api: Api, settings: Settings, db: asyncpg.Connection
) -> None:
    user = api.actor()
    await api.fund(user.id, 10)
    assert settings.DATABASE_URL is not None
    pool = await create_pool(settings.DATABASE_URL, size=1)
    try:
        group_commit = GroupCommit(pool)
        await group_commit.debit(UsageDebit(user.id, 1, "chat", "one"))
        await group_commit.aclose()
        async with pool.acquire() as conn:  # the same session, back in the pool: waits as long as ever
            assert await conn.fetchval("SHOW lock_timeout") == "0"
    finally:
        await pool.close()
    assert await audit(db) == []


async def test_fractional_charges_of_other_accounts_do_not_wait_for_a_locked_row(
    api: Api, base_url: str, settings: Settings, db: asyncpg.Connection
) -> None:
    """The same through ledger.fraction_commit: its transaction skips the held row and the locked
    account's charges wait alone; all of them answered while the row is still held, so none waited."""
    locked, others = api.actor(), [api.actor() for _ in range(4)]
    for user in (locked, *others):
        await api.fund(user.id, 100)

    def post(user_id: str, description: str) -> asyncio.Task[httpx.Response]:
        body = {"userId": user_id, "amount": 0.5, "appId": "chat", "description": description}
        return asyncio.create_task(http.post(USE, json=body, headers=HEADERS))

    assert settings.DATABASE_URL is not None
    holder = await connect(settings.DATABASE_URL)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
        lock = holder.transaction()
        await lock.start()
        try:
            await holder.execute("SELECT 1 FROM credits.balances WHERE user_id = $1 FOR UPDATE", locked.id)
            waiting = [post(locked.id, "locked")]
            for wave in range(3):
                waiting.append(post(locked.id, f"locked {wave}"))
                answers = await asyncio.gather(*[post(u.id, f"{wave}") for u in others * 3])
                assert [a.status_code for a in answers] == [200] * len(answers)
            assert not any(task.done() for task in waiting)  # they wait for the lock
        finally:
            await lock.rollback()
            await holder.close()
        answered = await asyncio.gather(*waiting)
    assert [r.status_code for r in answered] == [200] * 4
    # Four halves: two credits billed, one ledger row each, named by the answers that billed them.
    rows = await db.fetch(
        "SELECT id::text AS id FROM credits.transactions WHERE user_id = $1 AND type = 'usage'", locked.id
    )
    billed = {r.json()["transaction"]["id"] for r in answered if r.json()["transaction"]}
    assert {r["id"] for r in rows} == billed and len(billed) == 2
    assert (await api.balance(locked))["balance"] == 98
    for user in others:
        assert (await api.balance(user))["balance"] == 96  # nine halves: 4 billed, 0.5 accrued
    assert await audit(db) == []
