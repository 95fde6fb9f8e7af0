"""Debits through the group commit (ledger.group) keep every guarantee of one-statement debits: the same
200s and 402s, no lost update, one ledger and usage row per accepted debit, idempotent replays, a clean
audit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from mana_credits.app import create_app
from mana_credits.config import Settings
from mana_credits.context import AppContext
from mana_credits.db.pool import SESSION, init_connection
from mana_credits.kit.errors import InsufficientCredits
from mana_credits.ledger import TxType, take_back
from mana_credits.ledger.audit import audit
from mana_credits.ledger.group import GroupCommit, UsageDebit, apply_batch
from mana_credits.ledger.schemas import Entry
from tests.conftest import LiveServer
from tests.support import SERVICE_KEY, Actor, Api

USE = "/api/v1/internal/credits/use"
HEADERS = {"X-Service-Key": SERVICE_KEY, "X-App-Id": "chat"}


async def version(db: asyncpg.Connection, user_id: str) -> int:
    return int(await db.fetchval("SELECT version FROM credits.balances WHERE user_id = $1", user_id))


async def funded(api: Api, db: asyncpg.Connection, credits: int) -> tuple[Actor, int]:
    """A new account holding `credits`, and its balance row's version."""
    user = api.actor()
    await api.fund(user.id, credits)
    return user, await version(db, user.id)


async def together(ctx: AppContext, debits: list[UsageDebit]) -> list[Entry | BaseException]:
    """The debits sent at once through one group commit (the first alone, the rest in the next batch)."""
    group_commit = GroupCommit(ctx.pool)
    try:
        return await asyncio.gather(*map(group_commit.debit, debits), return_exceptions=True)
    finally:
        await group_commit.aclose()


async def test_200_debits_of_1_on_100_in_one_process(
    api: Api, ctx: AppContext, db: asyncpg.Connection
) -> None:
    user, before = await funded(api, db, 100)
    outcomes = await together(ctx, [UsageDebit(user.id, 1, "chat", f"debit {i}") for i in range(200)])
    entries = [o for o in outcomes if isinstance(o, Entry)]
    refused = [o for o in outcomes if isinstance(o, InsufficientCredits)]
    assert (len(entries), len(refused)) == (100, 100)
    assert sorted(e.balance for e in entries) == list(range(100))  # each saw its own balance
    assert sorted(e.total_spent for e in entries) == list(range(1, 101))
    assert {(r.required, r.available) for r in refused} == {(1, 0)}
    # Applied together: the balance row changed once or twice, not 100 times.
    assert await version(db, user.id) - before <= 2
    rows = await db.fetch(
        "SELECT id, amount, balance_before, balance_after FROM credits.transactions "
        "WHERE user_id = $1 AND type = 'usage'",
        user.id,
    )
    assert {r["id"] for r in rows} == {e.transaction.id for e in entries}
    assert sorted((r["balance_before"], r["balance_after"]) for r in rows) == [(b + 1, b) for b in range(100)]
    usage = await db.fetchval("SELECT sum(credits_used) FROM credits.usage_stats WHERE user_id = $1", user.id)
    assert usage == 100
    assert await api.balance(user) == {"balance": 0, "totalEarned": 100, "totalSpent": 100, "reserved": 0}
    assert await audit(db) == []


async def test_each_debit_is_decided_in_order_against_the_running_balance(
    api: Api, db: asyncpg.Connection
) -> None:
    user = api.actor()
    await api.fund(user.id, 10)
    items = [
        UsageDebit(user.id, 6, "chat", "six", {"op": "a"}),
        UsageDebit(user.id, 5, "chat", "five"),  # 4 left: refused, the next still fits
        UsageDebit(user.id, 4, "todo", "four", {"op": "b"}),
        UsageDebit(user.id, 1, "chat", "one"),  # 0 left
    ]
    outcomes = await apply_batch(db, items)
    assert isinstance(outcomes[1], InsufficientCredits) and isinstance(outcomes[3], InsufficientCredits)
    assert (outcomes[1].required, outcomes[1].available) == (5, 4)
    assert (outcomes[3].required, outcomes[3].available) == (1, 0)
    six, four = outcomes[0], outcomes[2]
    assert isinstance(six, Entry) and isinstance(four, Entry)
    assert (six.balance, six.total_spent, six.total_earned) == (4, 6, 10)
    assert (four.balance, four.total_spent) == (0, 10)
    assert (six.transaction.amount, six.transaction.balance_before, six.transaction.balance_after) == (
        -6,
        10,
        4,
    )
    assert (four.transaction.app_id, four.transaction.metadata) == ("todo", {"op": "b"})
    assert four.transaction.type == TxType.USAGE and four.transaction.status == "completed"
    usage = await db.fetch(
        "SELECT app_id, credits_used, metadata FROM credits.usage_stats WHERE user_id = $1 "
        "ORDER BY credits_used",
        user.id,
    )
    assert [(u["app_id"], u["credits_used"], u["metadata"]) for u in usage] == [
        ("todo", 4, {"op": "b"}), ("chat", 6, {"op": "a"}),
    ]  # fmt: skip
    assert await audit(db) == []


async def test_a_negative_or_missing_balance_refuses_the_whole_batch(
    api: Api, db: asyncpg.Connection
) -> None:
    user = api.actor()
    await api.fund(user.id, 5)
    await take_back(db, user.id, 8, app_id="stripe", description="dispute")
    outcomes = await apply_batch(db, [UsageDebit(user.id, 1, "chat", "x")] * 3)
    assert [(o.required, o.available) for o in outcomes if isinstance(o, InsufficientCredits)] == [
        (1, -3)
    ] * 3
    nobody = api.actor()
    outcomes = await apply_batch(db, [UsageDebit(nobody.id, 1, "chat", "x")] * 2)
    assert [(o.required, o.available) for o in outcomes if isinstance(o, InsufficientCredits)] == [(1, 0)] * 2
    count = await db.fetchval(
        "SELECT count(*) FROM credits.transactions WHERE user_id = ANY($1) AND type = 'usage'",
        [user.id, nobody.id],
    )
    assert count == 0
    assert await audit(db) == []


async def test_a_value_the_database_refuses_fails_only_its_own_debit(
    api: Api, ctx: AppContext, db: asyncpg.Connection
) -> None:
    # A NUL character passes JSON but not PostgreSQL's text or jsonb: the batch's one statement fails,
    # and the debits that came with it must not fail with it.
    user, before = await funded(api, db, 100)
    bad = [UsageDebit(user.id, 1, "chat", "nul \u0000"), UsageDebit(user.id, 1, "chat", "x", {"a": "\u0000"})]
    good = [UsageDebit(user.id, 1, "chat", f"debit {i}") for i in range(20)]
    outcomes = await together(ctx, [*good[:10], *bad, *good[10:]])
    assert all(isinstance(o, asyncpg.DataError) for o in outcomes[10:12])
    entries = [o for o in outcomes if isinstance(o, Entry)]
    assert len(entries) == 20
    assert sorted(e.balance for e in entries) == list(range(80, 100))
    assert (await api.balance(user))["balance"] == 80
    rows = await db.fetchval(
        "SELECT count(*) FROM credits.transactions WHERE user_id = $1 AND type = 'usage'", user.id
    )
    assert rows == 20 and await version(db, user.id) > before
    assert await audit(db) == []


# ---- the connection the batches keep ----

KEPT = "group-commit-under-test"


@contextlib.asynccontextmanager
async def named_pool(
    ctx: AppContext, resets: list[int] | None = None, **options: Any
) -> AsyncIterator[asyncpg.Pool]:
    """A pool of its own whose sessions the test finds by name in pg_stat_activity; each connection given
    back to it appends 1 to `resets`."""

    async def reset(conn: asyncpg.Connection) -> None:
        if resets is not None:
            resets.append(1)
        await conn.reset()

    pool = await asyncpg.create_pool(
        ctx.settings.DATABASE_URL, min_size=1, max_size=2, init=init_connection, reset=reset,
        server_settings={**SESSION, "application_name": KEPT}, **options,
    )  # fmt: skip
    try:
        yield pool
    finally:
        pool.terminate()  # not close(): it would wait forever for a connection a failed test still holds


async def test_a_connection_the_server_ended_is_replaced_before_the_next_batch(
    api: Api, ctx: AppContext, db: asyncpg.Connection
) -> None:
    user, _ = await funded(api, db, 10)
    async with named_pool(ctx) as pool:
        group_commit = GroupCommit(pool)
        assert (await group_commit.debit(UsageDebit(user.id, 1, "chat", "before"))).balance == 9
        sessions = "SELECT pid FROM pg_stat_activity WHERE application_name = $1"
        ended = [r["pid"] for r in await db.fetch(sessions, KEPT)]
        # Returns once the sessions are gone (or after 5 s).
        await db.execute("SELECT pg_terminate_backend(pid, 5000) FROM unnest($1::int[]) pid", ended)
        assert not set(ended) & {r["pid"] for r in await db.fetch(sessions, KEPT)}
        after = await group_commit.debit(UsageDebit(user.id, 1, "chat", "after"))
        assert after.balance == 8 and after.total_spent == 2
        await group_commit.aclose()
        assert pool.get_idle_size() == pool.get_size()  # the kept connection is back in the pool
    assert await audit(db) == []


async def test_a_kept_connection_idle_too_long_goes_back_to_the_pool_before_the_next_batch(
    api: Api, ctx: AppContext, db: asyncpg.Connection
) -> None:
    user, _ = await funded(api, db, 10)
    for keep_idle_seconds, given_back in ((3600.0, 0), (0.0, 2)):
        resets: list[int] = []
        async with named_pool(ctx, resets) as pool:
            group_commit = GroupCommit(pool, keep_idle_seconds=keep_idle_seconds)
            for _ in range(3):
                await group_commit.debit(UsageDebit(user.id, 1, "chat", "one"))
            assert len(resets) == given_back  # before the second and the third batch, or never
            await group_commit.aclose()
    assert (await api.balance(user))["balance"] == 4
    assert await audit(db) == []


async def test_a_batch_that_timed_out_is_not_applied_and_the_next_gets_a_sound_connection(
    api: Api, ctx: AppContext, db: asyncpg.Connection
) -> None:
    user, _ = await funded(api, db, 10)
    # Bounded: a batch that went on waiting for the row lock the test holds would hang the test.
    async with asyncio.timeout(30), named_pool(ctx, command_timeout=0.5) as pool:
        group_commit = GroupCommit(pool)
        async with db.transaction():  # holds the balance row, so the batch waits past its timeout
            await db.execute("SELECT 1 FROM credits.balances WHERE user_id = $1 FOR UPDATE", user.id)
            with pytest.raises(TimeoutError):
                await group_commit.debit(UsageDebit(user.id, 3, "chat", "timed out"))
        entry = await group_commit.debit(UsageDebit(user.id, 1, "chat", "next"))
        assert (entry.balance, entry.transaction.balance_before) == (9, 10)
        await group_commit.aclose()
        assert pool.get_idle_size() == pool.get_size()
    descriptions = await db.fetch(
        "SELECT description FROM credits.transactions WHERE user_id = $1 AND type = 'usage'", user.id
    )
    assert [r["description"] for r in descriptions] == ["next"]
    assert await audit(db) == []


@contextlib.asynccontextmanager
async def fresh_client(base: str) -> AsyncIterator[httpx.AsyncClient]:
    """Its own connections: none a keep-alive timeout of the session's client could close under it."""
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        yield http


async def hot_account(api: Api, http: httpx.AsyncClient, db: asyncpg.Connection) -> dict[str, Any]:
    """200 debits of 1 on 100 credits, and a retried keyed debit, all at once on one account."""
    user = api.actor()
    await api.fund(user.id, 150)
    plain = {"userId": user.id, "amount": 1, "appId": "chat", "description": "one"}
    keyed = {**plain, "amount": 50, "description": "fifty"}
    results = await asyncio.gather(
        *[http.post(USE, json=plain, headers=HEADERS) for _ in range(200)],
        *[
            http.post(USE, json=keyed, headers={**HEADERS, "Idempotency-Key": f"k-{user.id}"})
            for _ in range(10)
        ],
    )
    plain_results, keyed_results = results[:200], results[200:]
    assert all(r.status_code in (200, 402) for r in results)
    for r in results:
        if r.status_code == 402:
            assert r.json()["code"] == "insufficient_credits"
    keyed_ids = {r.json()["transaction"]["id"] for r in keyed_results if r.status_code == 200}
    rows = await db.fetch(
        "SELECT amount, balance_after FROM credits.transactions WHERE user_id = $1 AND type = 'usage'",
        user.id,
    )
    assert await audit(db) == []
    return {
        "plain": sorted(r.status_code for r in plain_results),
        "keyed": sorted(r.status_code for r in keyed_results),
        "keyed_effects": len(keyed_ids),
        "replays": sum(r.headers.get("idempotent-replayed") == "true" for r in keyed_results),
        "rows": sorted(r["balance_after"] for r in rows),
        "balance": (await api.balance(user))["balance"],
    }


async def test_same_answers_with_and_without_the_group_commit(
    api: Api, base_url: str, no_group_commit: str, db: asyncpg.Connection
) -> None:
    async with fresh_client(base_url) as http:
        on = await hot_account(api, http, db)
    async with fresh_client(no_group_commit) as http:
        off = await hot_account(api, http, db)
    # 150 credits: the keyed 50 lands once (the other 9 replay it if it succeeded, or all retry to 402),
    # and plain debits of 1 take what is left; every 200 has its row, every row a distinct balance.
    for result in (on, off):
        assert result["keyed_effects"] <= 1
        taken = 50 * result["keyed_effects"] + result["plain"].count(200)
        assert taken == 150 and result["balance"] == 0
        assert len(set(result["rows"])) == len(result["rows"])  # no two debits saw the same balance
        assert len(result["rows"]) == result["keyed_effects"] + result["plain"].count(200)
        if result["keyed_effects"]:
            assert result["keyed"] == [200] * 10 and result["replays"] == 9
    assert on["plain"].count(402) == 200 - on["plain"].count(200)


# ---- group commit across accounts ----


async def test_one_batch_of_several_accounts_decides_each_in_its_own_order(
    api: Api, db: asyncpg.Connection
) -> None:
    rich, poor, overdrawn, nobody = api.actor(), api.actor(), api.actor(), api.actor()
    await api.fund(rich.id, 10)
    await api.fund(poor.id, 3)
    await api.fund(overdrawn.id, 5)
    await take_back(db, overdrawn.id, 8, app_id="stripe", description="dispute")
    versions = {u.id: await version(db, u.id) for u in (rich, poor, overdrawn)}
    items = [
        UsageDebit(poor.id, 2, "chat", "p1"),
        UsageDebit(rich.id, 4, "chat", "r1", {"op": "r1"}),
        UsageDebit(nobody.id, 1, "chat", "n1"),
        UsageDebit(poor.id, 2, "chat", "p2"),  # 1 left: refused
        UsageDebit(rich.id, 7, "todo", "r2"),  # 6 left: refused, the next still fits
        UsageDebit(overdrawn.id, 1, "chat", "o1"),
        UsageDebit(poor.id, 1, "chat", "p3"),
        UsageDebit(rich.id, 6, "todo", "r3"),
    ]
    outcomes = await apply_batch(db, items)
    refused = {
        i: (o.required, o.available) for i, o in enumerate(outcomes) if isinstance(o, InsufficientCredits)
    }
    assert refused == {2: (1, 0), 3: (2, 1), 4: (7, 6), 5: (1, -3)}
    entries = {i: o for i, o in enumerate(outcomes) if isinstance(o, Entry)}
    assert {i: (e.transaction.user_id, e.transaction.balance_before, e.balance, e.total_spent)
            for i, e in entries.items()} == {
        0: (poor.id, 3, 1, 2), 1: (rich.id, 10, 6, 4), 6: (poor.id, 1, 0, 3), 7: (rich.id, 6, 0, 10),
    }  # fmt: skip
    assert entries[1].transaction.metadata == {"op": "r1"} and entries[7].transaction.app_id == "todo"
    # Each account with accepted debits moved once; the others not at all, and nobody got no row.
    assert {u.id: await version(db, u.id) - v for u, v in zip((rich, poor, overdrawn), versions.values(),
                                                               strict=True)} == {
        rich.id: 1, poor.id: 1, overdrawn.id: 0,
    }  # fmt: skip
    assert await db.fetchval("SELECT count(*) FROM credits.balances WHERE user_id = $1", nobody.id) == 0
    rows = await db.fetch(
        "SELECT id FROM credits.transactions WHERE user_id = ANY($1) AND type = 'usage'",
        [u.id for u in (rich, poor, overdrawn, nobody)],
    )
    assert {r["id"] for r in rows} == {e.transaction.id for e in entries.values()}
    usage = await db.fetch(
        "SELECT user_id, sum(credits_used) AS used FROM credits.usage_stats WHERE user_id = ANY($1) "
        "GROUP BY user_id",
        [u.id for u in (rich, poor, overdrawn, nobody)],
    )
    assert {u["user_id"]: u["used"] for u in usage} == {rich.id: 10, poor.id: 3}
    assert await audit(db) == []


async def spread_load(http: httpx.AsyncClient, users: list[str], per_user: int) -> list[httpx.Response]:
    """`per_user` plain debits of 1 per account plus one keyed debit of 1 sent three times, all at once."""
    plain = [
        http.post(USE, json={"userId": u, "amount": 1, "appId": "chat", "description": "p"}, headers=HEADERS)
        for u in users
        for _ in range(per_user)
    ]
    keyed = [
        http.post(USE, json={"userId": u, "amount": 1, "appId": "chat", "description": "k"},
                  headers={**HEADERS, "Idempotency-Key": f"k-{u}"})
        for u in users
        for _ in range(3)
    ]  # fmt: skip
    return list(await asyncio.gather(*plain, *keyed))


async def test_concurrent_debits_of_many_accounts_over_http_from_two_processes(
    api: Api, base_url: str, settings: Settings, db: asyncpg.Connection
) -> None:
    """Two instances (two group commits, batches that lock the same rows) charge 20 accounts of 5 credits
    with 12 debits each: exactly 5 land per account, every 200 has its ledger row, the keyed debit has at
    most one effect, and nothing else happens."""
    second = LiveServer(create_app(settings))
    other = await second.start()
    try:
        users = [api.actor().id for _ in range(20)]
        for user in users:
            await api.fund(user, 5)
        async with fresh_client(base_url) as one, fresh_client(other) as two:
            results = await asyncio.gather(spread_load(one, users, 5), spread_load(two, users[::-1], 4))
    finally:
        await second.stop()
    answers = [r for batch in results for r in batch]
    assert {r.status_code for r in answers} <= {200, 402}
    assert all(r.json()["code"] == "insufficient_credits" for r in answers if r.status_code == 402)
    effects = {r.json()["transaction"]["id"]: r.json()["transaction"]["userId"] for r in answers
               if r.status_code == 200}  # fmt: skip
    rows = await db.fetch(
        "SELECT id, user_id, balance_after, idempotency_key FROM credits.transactions "
        "WHERE user_id = ANY($1) AND type = 'usage'",
        users,
    )
    assert {str(r["id"]): r["user_id"] for r in rows} == effects  # every 200 is a row; a replay names it
    for user in users:
        mine = [r for r in rows if r["user_id"] == user]
        assert sorted(r["balance_after"] for r in mine) == [0, 1, 2, 3, 4]
        assert sum(r["idempotency_key"] is not None for r in mine) <= 1
        assert await db.fetchval("SELECT balance FROM credits.balances WHERE user_id = $1", user) == 0
    assert await audit(db) == []
