"""What the ledger returns, shaped as the JSON the old service answered (camelCase)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from mana_credits.kit.records import from_record


class TxType(StrEnum):
    PURCHASE = "purchase"
    USAGE = "usage"
    REFUND = "refund"
    GIFT = "gift"
    GRANT = "grant"
    REVERSAL = "reversal"
    EXPIRY = "expiry"


class Transaction(msgspec.Struct, rename="camel", kw_only=True):
    id: UUID
    user_id: str
    type: str
    status: str
    amount: int
    balance_before: int
    balance_after: int
    app_id: str
    description: str
    metadata: dict[str, Any] | None
    idempotency_key: str | None
    created_at: datetime
    completed_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Transaction:
        return from_record(cls, row)


# The default object itself: msgspec leaves a field out when its value *is* the default.
NOTHING_ACCRUED = 0.0


def accrued(value: object) -> float:
    """An accrued sum (numeric) as answered, 0 as the default object so that it is left out."""
    return float(value) if value else NOTHING_ACCRUED  # type: ignore[arg-type]


def shown_totals(earned: int, spent: int) -> tuple[int, int]:
    """The totals as answered: `total_spent` is net of refunds and never below 0; a refund beyond what the
    totals say was spent (usage from before the switch, a goodwill refund) counts as earned instead. So
    earned - spent is unchanged (the stored columns, which `audit` checks, keep the net values)."""
    return (earned - spent, 0) if spent < 0 else (earned, spent)


class Balance(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    balance: int
    total_earned: int
    total_spent: int
    reserved: int
    # Fractional usage accrued over all apps, not billed yet (ledger.accrual); below one credit per app.
    # Left out when 0, so answers without fractions read as before.
    accrued: float = NOTHING_ACCRUED

    def __post_init__(self) -> None:
        self.total_earned, self.total_spent = shown_totals(self.total_earned, self.total_spent)

    @classmethod
    def from_row(cls, row: asyncpg.Record | None) -> Balance:
        if row is None:
            return cls(balance=0, total_earned=0, total_spent=0, reserved=0)
        return cls(
            balance=row["balance"],
            total_earned=row["total_earned"],
            total_spent=row["total_spent"],
            reserved=row["reserved"],
            accrued=accrued(row.get("accrued")),
        )


class BalanceRow(Balance, kw_only=True):
    """The whole balance row, as the old service's `init` answered it."""

    user_id: str
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_record(cls, row: asyncpg.Record) -> BalanceRow:
        return from_record(cls, row, accrued=accrued(row.get("accrued")))


class AccountSummary(Balance, kw_only=True):
    """The internal balance: mana-auth's data export also reads how many ledger rows the user has."""

    transactions_count: int

    @classmethod
    def from_record(cls, row: asyncpg.Record) -> AccountSummary:
        return from_record(cls, row, accrued=accrued(row["accrued"]))


class Entry(msgspec.Struct, kw_only=True):
    """A ledger write: the transaction row plus the balance totals right after it."""

    transaction: Transaction
    balance: int
    total_earned: int
    total_spent: int
