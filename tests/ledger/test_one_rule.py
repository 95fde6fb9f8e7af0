"""One debit rule (ledger.rule): the same debits booked through each path — a single debit, a hold's
settle, many, the group commit — write the same ledger rows, usage rows and balance, field by field."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from mana_credits import ledger
from mana_credits.kit.errors import InsufficientCredits
from mana_credits.ledger import DebitItem, TxType, debit_many
from mana_credits.ledger.audit import audit
from mana_credits.ledger.group import UsageDebit, apply_batch
from tests.support import Api

# (amount, description, metadata); the last is more than is left, and refused.
DEBITS: list[tuple[int, str, dict[str, Any] | None]] = [(7, "first", {"op": "a"}), (5, "second", None)]
TOO_MUCH = 30
APP = "chat"


async def single(db: asyncpg.Connection, user_id: str) -> None:
    for amount, description, metadata in DEBITS:
        await ledger.debit(
            db, user_id, amount, type=TxType.USAGE, app_id=APP, description=description, metadata=metadata,
            record_usage=True,
        )  # fmt: skip
    with pytest.raises(InsufficientCredits):
        await ledger.debit(db, user_id, TOO_MUCH, type=TxType.USAGE, app_id=APP, description="x")


async def settle(db: asyncpg.Connection, user_id: str) -> None:
    for amount, description, metadata in DEBITS:
        async with db.transaction():
            await ledger.hold(db, user_id, amount + 3)  # 3 of the hold come back
            await ledger.settle_hold(
                db, user_id, amount + 3, amount, app_id=APP, description=description, metadata=metadata
            )
    with pytest.raises(InsufficientCredits):
        await ledger.hold(db, user_id, TOO_MUCH)


async def many(db: asyncpg.Connection, user_id: str) -> None:
    for amount, description, metadata in [*DEBITS, (TOO_MUCH, "x", None)]:
        items = [DebitItem(user_id, amount, description, metadata)]
        await debit_many(db, items, type=TxType.USAGE, app_id=APP, record_usage=True)


async def group(db: asyncpg.Connection, user_id: str) -> None:
    items = [UsageDebit(user_id, a, APP, d, m) for a, d, m in [*DEBITS, (TOO_MUCH, "x", None)]]
    outcomes = await apply_batch(db, items)
    assert isinstance(outcomes[-1], InsufficientCredits)


PATHS: dict[str, Callable[[asyncpg.Connection, str], Awaitable[None]]] = {
    "single": single, "settle": settle, "many": many, "group": group,
}  # fmt: skip


async def written(db: asyncpg.Connection, user_id: str) -> dict[str, list[dict[str, Any]]]:
    """What the account's rows say, without what differs by account or by clock (ids, times)."""
    ledger_rows = await db.fetch(
        "SELECT type, status, amount, balance_before, balance_after, app_id, description, metadata, "
        "idempotency_key, completed_at IS NOT NULL AS completed FROM credits.transactions "
        "WHERE user_id = $1 ORDER BY balance_before DESC",
        user_id,
    )
    usage_rows = await db.fetch(
        "SELECT app_id, credits_used, date, metadata FROM credits.usage_stats WHERE user_id = $1 "
        "ORDER BY credits_used",
        user_id,
    )
    balance = await db.fetch(
        "SELECT balance, total_earned, total_spent, reserved FROM credits.balances WHERE user_id = $1",
        user_id,
    )
    return {
        "ledger": [dict(row) for row in ledger_rows],
        "usage": [dict(row) for row in usage_rows],
        "balance": [dict(row) for row in balance],
    }


async def test_every_path_writes_the_same_rows(api: Api, db: asyncpg.Connection) -> None:
    rows = {}
    for name, book in PATHS.items():
        user = api.actor()
        await ledger.credit(db, user.id, 20, type=TxType.GRANT, app_id="tests", description="funding")
        await book(db, user.id)
        rows[name] = await written(db, user.id)
    assert rows["single"]["balance"] == [{"balance": 8, "total_earned": 20, "total_spent": 12, "reserved": 0}]
    assert [(r["amount"], r["balance_before"], r["balance_after"]) for r in rows["single"]["ledger"]] == [
        (-7, 20, 13), (-5, 13, 8), (20, 0, 20),
    ]  # fmt: skip
    assert [(r["credits_used"], r["metadata"]) for r in rows["single"]["usage"]] == [
        (5, None),
        (7, {"op": "a"}),
    ]
    for name in ("settle", "many", "group"):
        for table in ("ledger", "usage", "balance"):
            assert rows[name][table] == rows["single"][table], (name, table)
    assert await audit(db) == []
