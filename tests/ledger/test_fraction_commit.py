"""Fractional charges decided together (ledger.accrual.charge_all, ledger.fraction_commit) keep every
guarantee of one charge at a time: each charge decided in arrival order against its account's running
balance and its app's running accrual, whole credits billed once with their rollup rows, the same 402s,
a clean audit. Before, every fractional charge was a transaction of its own (S1f 0.30 of S1's rate)."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from decimal import Decimal

import asyncpg
import httpx

from mana_credits.context import AppContext
from mana_credits.kit.errors import InsufficientCredits
from mana_credits.ledger.accrual import Accrued, Charge, charge_all
from mana_credits.ledger.audit import audit
from mana_credits.ledger.fraction_commit import FractionCommit
from tests.support import SERVICE_KEY, Api

USE = "/api/v1/internal/credits/use"


async def _accruals(db: asyncpg.Connection, user_id: str) -> dict[str, tuple[Decimal, int, Decimal]]:
    rows = await db.fetch(
        "SELECT app_id, charged, billed, accrued FROM credits.usage_accruals WHERE user_id = $1", user_id
    )
    return {r["app_id"]: (r["charged"], r["billed"], r["accrued"]) for r in rows}


async def _usage(db: asyncpg.Connection, user_id: str) -> list[tuple[str, int, str]]:
    rows = await db.fetch(
        "SELECT t.app_id, t.amount, t.metadata->'accrual'->>'charges' AS charges FROM credits.transactions t "
        "JOIN credits.accrual_rollups r ON r.transaction_id = t.id AND r.credits = -t.amount "
        "WHERE t.user_id = $1 AND t.type = 'usage' ORDER BY t.balance_after DESC",
        user_id,
    )
    return [(r["app_id"], r["amount"], r["charges"]) for r in rows]


async def test_one_transaction_decides_each_charge_in_arrival_order(api: Api, db: asyncpg.Connection) -> None:
    one, five, nobody = api.actor(), api.actor(), api.actor()
    await api.fund(one.id, 1)
    await api.fund(five.id, 5)
    half, seven = Decimal("0.5"), Decimal("0.7")
    items = [
        Charge(one.id, half, "chat", "a"),  # accrues 0.5 (the balance covers the credit it heads for)
        Charge(five.id, seven, "chat", "b"),
        Charge(one.id, half, "chat", "c"),  # completes 1 credit: billed, balance 0
        Charge(five.id, seven, "who", "d"),  # another app accrues on its own
        Charge(one.id, half, "chat", "e"),  # 0.5 would stay accrued, with nothing to pay it: 402
        Charge(five.id, seven, "chat", "f"),  # 1.4: 1 billed, 0.4 stays
        Charge(nobody.id, Decimal("0.1"), "chat", "g"),  # no balance row: 402
        Charge(five.id, seven, "who", "h"),
    ]
    async with db.transaction():
        outcomes = await charge_all(db, items)
    refused = {
        i: (o.required, o.available) for i, o in enumerate(outcomes) if isinstance(o, InsufficientCredits)
    }
    assert refused == {4: (1, 0), 6: (1, 0)}
    done = {i: o for i, o in enumerate(outcomes) if isinstance(o, Accrued)}
    assert set(done) == {0, 1, 2, 3, 5, 7}
    billed = {i for i, o in done.items() if o.entry is not None}
    assert billed == {2, 5, 7}
    assert [(done[i].balance.balance, done[i].accrued) for i in (0, 2, 1, 3, 5, 7)] == [
        (1, half), (0, 0), (5, seven), (5, seven), (4, Decimal("0.4")), (3, Decimal("0.4")),
    ]  # fmt: skip
    assert await _accruals(db, one.id) == {"chat": (Decimal(1), 1, Decimal(0))}
    assert await _accruals(db, five.id) == {"chat": (Decimal("1.4"), 1, Decimal("0.4")),
                                            "who": (Decimal("1.4"), 1, Decimal("0.4"))}  # fmt: skip
    assert await _accruals(db, nobody.id) == {"chat": (Decimal(0), 0, Decimal(0))}
    assert await _usage(db, one.id) == [("chat", -1, "2")]
    assert sorted(await _usage(db, five.id)) == [("chat", -1, "2"), ("who", -1, "2")]
    for i in billed:
        entry = done[i].entry
        assert entry is not None and entry.transaction.description == items[i].description
    assert (await api.balance(five))["balance"] == 3 and (await api.balance(one))["balance"] == 0
    assert await audit(db) == []


async def test_concurrent_charges_of_many_accounts_and_apps_add_up(
    api: Api, ctx: AppContext, db: asyncpg.Connection
) -> None:
    users = [api.actor() for _ in range(6)]
    for user in users:
        await api.fund(user.id, 10)
    amounts = [Decimal("0.1"), Decimal("0.25"), Decimal("0.333"), Decimal("1.5")]
    items = [
        Charge(users[i % 6].id, amounts[i % 4], ("chat", "who")[i % 5 % 2], f"charge {i}") for i in range(240)
    ]
    commit = FractionCommit(ctx.pool)
    try:
        outcomes = await asyncio.gather(*map(commit.charge, items), return_exceptions=True)
    finally:
        await commit.aclose()
    # Each account can pay 10 credits: charges are refused only once little is left, never lost.
    accepted: defaultdict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for item, outcome in zip(items, outcomes, strict=True):
        assert isinstance(outcome, Accrued | InsufficientCredits), outcome
        if isinstance(outcome, Accrued):
            accepted[item.user_id, item.app_id] += item.amount
    for user in users:
        stored = await _accruals(db, user.id)
        charged = {app: accepted[user.id, app] for app in ("chat", "who") if (user.id, app) in accepted}
        assert {app: row[0] for app, row in stored.items()} == charged
        billed = sum(row[1] for row in stored.values())
        assert (await api.balance(user))["balance"] == 10 - billed >= 0
        assert sum(-amount for _, amount, _ in await _usage(db, user.id)) == billed
    assert await audit(db) == []


async def test_a_value_the_database_refuses_fails_only_its_own_charge(
    api: Api, ctx: AppContext, db: asyncpg.Connection
) -> None:
    user = api.actor()
    await api.fund(user.id, 100)
    good = [Charge(user.id, Decimal("0.5"), "chat", f"charge {i}") for i in range(20)]
    # Whole credits in each: their rollup's ledger row carries the NUL.
    bad = [Charge(user.id, Decimal("1.5"), "chat", "nul \u0000"),
           Charge(user.id, Decimal("1.5"), "chat", "x", {"a": "\u0000"})]  # fmt: skip
    commit = FractionCommit(ctx.pool)
    try:
        outcomes = await asyncio.gather(
            *map(commit.charge, [*good[:10], *bad, *good[10:]]), return_exceptions=True
        )
    finally:
        await commit.aclose()
    assert all(isinstance(o, asyncpg.DataError) for o in outcomes[10:12]), outcomes[10:12]
    assert sum(isinstance(o, Accrued) for o in outcomes) == 20
    assert await _accruals(db, user.id) == {"chat": (Decimal(10), 10, Decimal(0))}
    assert (await api.balance(user))["balance"] == 90
    assert await audit(db) == []


async def test_same_state_with_and_without_the_group_commit(
    api: Api, base_url: str, no_group_commit: str, db: asyncpg.Connection
) -> None:
    """60 concurrent charges of 0.3 on 2 credits over HTTP: 6 are taken (1.8), the rest 402, either way."""
    results = []
    for base in (base_url, no_group_commit):
        user = api.actor()
        await api.fund(user.id, 2)
        body = {"userId": user.id, "amount": 0.3, "appId": "chat", "description": "tenths"}
        headers = {"X-Service-Key": SERVICE_KEY, "X-App-Id": "chat"}
        limits = httpx.Limits(max_connections=60, max_keepalive_connections=60)
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
            answers = await asyncio.gather(*[http.post(USE, json=body, headers=headers) for _ in range(60)])
        codes = Counter(a.status_code for a in answers)
        rollups = [a for a in answers if a.status_code == 200 and a.json()["transaction"]]
        results.append(
            (codes, len(rollups), await _accruals(db, user.id), (await api.balance(user))["balance"])
        )
    for codes, billed, accruals, balance in results:
        # 0.3 x 6 = 1.8: one credit billed at 1.2, then 0.8 accrued heads for the last credit; a 7th would
        # bill it and leave 0.1 accrued with nothing to pay for it: 402.
        assert codes == {200: 6, 402: 54}, codes
        assert billed == 1 and accruals == {"chat": (Decimal("1.8"), 1, Decimal("0.8"))} and balance == 1
    assert await audit(db) == []
