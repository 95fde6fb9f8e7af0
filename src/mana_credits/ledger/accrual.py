"""Fractional usage: a charge of up to three decimals (apps/api bills 0.1 credit per local chat) accrues per
user and app in `credits.usage_accruals`; whenever the accrued amount reaches whole credits, they are
billed as one usage row through the single debit (the debit rule, rule.py), in the same transaction as the
accrual, with `metadata.accrual` naming what it rolled up and a row in `credits.accrual_rollups`.

A charge is refused with InsufficientCredits (402), changing nothing, when the balance cannot pay the
whole credits it completes, or, when something stays accrued, the whole credit it accrues toward (so
an account cannot run up fractions it will never pay). Exact decimals throughout: ten charges of 0.1
bill one credit, once (the accrual row is locked for the charge, so charges of one account queue).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec

from mana_credits.db.pool import Conn
from mana_credits.kit.errors import CreditsError, InsufficientCredits
from mana_credits.ledger.errors import OutcomeUnknown
from mana_credits.ledger.outcome import cut_off
from mana_credits.ledger.repository import debit, get_balance
from mana_credits.ledger.schemas import Balance, Entry, TxType

QUANTUM = Decimal("0.001")

_LOCK = """
INSERT INTO credits.usage_accruals AS a (user_id, app_id) VALUES ($1, $2)
ON CONFLICT (user_id, app_id) DO UPDATE SET updated_at = now()
RETURNING a.accrued, a.charges
"""

_ACCRUE = """
UPDATE credits.usage_accruals
SET charged = charged + $3, billed = billed + $4, accrued = $5, charges = $6, updated_at = now()
WHERE user_id = $1 AND app_id = $2
"""

_ROLLUP = (
    "INSERT INTO credits.accrual_rollups (transaction_id, user_id, app_id, credits) VALUES ($1, $2, $3, $4)"
)


@dataclass(frozen=True, slots=True)
class Accrued:
    """What a fractional charge did: the rollup's ledger write (None when nothing was billed), what is
    accrued for the app afterwards, the balance afterwards."""

    entry: Entry | None
    accrued: Decimal
    balance: Balance


async def charge(
    conn: Conn,
    user_id: str,
    amount: Decimal,
    *,
    app_id: str,
    description: str,
    metadata: dict[str, Any] | None,
    idempotency_key: str | None,
) -> Accrued:
    """Accrue `amount` (> 0, at most three decimals) and bill the whole credits it completes; the caller
    owns the transaction (a 402 must roll the accrual row's lock back with it)."""
    assert amount > 0 and amount == amount.quantize(QUANTUM)
    row = await conn.fetchrow(_LOCK, user_id, app_id)
    assert row is not None
    before: Decimal = row["accrued"]
    charges = int(row["charges"]) + 1
    total = before + amount
    whole = int(total)  # the floor, as total > 0
    rest = total - whole
    entry = None
    if whole:
        rolled = {"credits": whole, "charges": charges, "accruedBefore": str(before), "charged": str(amount)}
        entry = await debit(
            conn,
            user_id,
            whole,
            type=TxType.USAGE,
            app_id=app_id,
            description=description,
            metadata={**(metadata or {}), "accrual": rolled},
            idempotency_key=idempotency_key,
            record_usage=True,
        )
        await conn.execute(_ROLLUP, entry.transaction.id, user_id, app_id, whole)
        charges = 0
    balance = await get_balance(conn, user_id, create=False)
    if rest and balance.balance < 1:
        raise InsufficientCredits(required=1, available=balance.balance)
    await conn.execute(_ACCRUE, user_id, app_id, amount, whole, rest, charges)
    return Accrued(entry=entry, accrued=rest, balance=balance)


@contextlib.asynccontextmanager
async def alone(pool: asyncpg.Pool) -> AsyncIterator[Conn]:
    """A connection and transaction for one keyless fractional charge. Cut before its answer came back,
    it may have committed (and a charge without a whole credit leaves no ledger row to look up), so the
    caller is told OutcomeUnknown, never to retry (ledger.outcome's rule)."""
    async with pool.acquire() as conn:
        try:
            async with conn.transaction():
                yield conn
        except CreditsError:
            raise
        except Exception as exc:
            if cut_off(exc, conn):
                raise OutcomeUnknown() from exc
            raise


# Per user and app: charged = billed + accrued (the table's CHECK), billed = its rollups, and each rollup's
# ledger row is a completed usage of exactly its credits.
_AUDIT = """
SELECT a.user_id, a.app_id, a.charged, a.billed, a.accrued,
       COALESCE(r.credits, 0) AS rolled_up, COALESCE(r.in_ledger, 0) AS in_ledger
FROM credits.usage_accruals a
LEFT JOIN (
  SELECT r.user_id, r.app_id, SUM(r.credits) AS credits,
         SUM(CASE WHEN t.status = 'completed' AND t.type = 'usage' AND t.amount = -r.credits
                  THEN r.credits ELSE 0 END) AS in_ledger
  FROM credits.accrual_rollups r LEFT JOIN credits.transactions t ON t.id = r.transaction_id
  GROUP BY r.user_id, r.app_id
) r USING (user_id, app_id)
"""


class AccrualOffender(msgspec.Struct, kw_only=True):
    user_id: str
    app_id: str
    charged: Decimal
    billed: int
    accrued: Decimal
    rolled_up: int
    in_ledger: int

    @property
    def problems(self) -> list[str]:
        found = []
        if self.charged != self.billed + self.accrued:
            found.append(f"charged {self.charged} != billed {self.billed} + accrued {self.accrued}")
        if self.billed != self.rolled_up:
            found.append(f"billed {self.billed} != rolled up {self.rolled_up}")
        if self.rolled_up != self.in_ledger:
            found.append(f"rolled up {self.rolled_up} != in the ledger {self.in_ledger}")
        return found


async def audit_accruals(conn: Conn) -> list[AccrualOffender]:
    """The accruals that do not add up (fractions accepted = whole credits billed + accrued)."""
    checked = [AccrualOffender(**dict(row)) for row in await conn.fetch(_AUDIT)]
    return [item for item in checked if item.problems]
