"""The bench's pgbench script is the ledger's own debit statement with pgbench variables in place of its
parameters: a new parameter of the statement must not break `make bench` unnoticed (as $9 did once)."""

from __future__ import annotations

import random

import asyncpg
from bench.api import debit_script

from mana_credits import ledger
from mana_credits.ledger.schemas import TxType


async def test_the_pgbench_debit_is_the_ledger_debit(db: asyncpg.Connection) -> None:
    uid = random.randrange(10**9, 10**10)
    user = f"bench-{uid}"
    await ledger.credit(db, user, 5, type=TxType.GRANT, app_id="t", description="seed")
    script = debit_script(1)
    statement = (
        script.split("\n", 2)[2].replace(":uid", str(uid)).replace(":amount", "1").rstrip().rstrip(";")
    )
    await db.execute(statement)
    row = await db.fetchrow(
        "SELECT amount, balance_after, app_id, description FROM credits.transactions "
        "WHERE user_id = $1 AND type = 'usage'",
        user,
    )
    assert row is not None and dict(row) == {
        "amount": -1,
        "balance_after": 4,
        "app_id": "bench",
        "description": "pgbench debit",
    }
    assert await db.fetchval("SELECT balance FROM credits.balances WHERE user_id = $1", user) == 4
