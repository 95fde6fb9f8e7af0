"""Request bodies and answers. Amounts are whole credits > 0: a fractional or non-positive amount is a 400,
except on the usage debits, which take up to three decimals (fractions accrue: ledger.accrual)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from mana_credits.config import MAX_HOLD_TTL_SECONDS
from mana_credits.kit.validation import UserId
from mana_credits.ledger.accrual import Accrued
from mana_credits.ledger.schemas import Entry, Transaction, shown_totals

Amount = Annotated[int, msgspec.Meta(gt=0, le=1_000_000_000)]
Charge = int | float  # bounds: credits.service.charge_amount (msgspec has none for a union)
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
AppId = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


class UseCredits(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=False):
    # Whole credits, or up to three decimals (credits.service.charge_amount reads the number as written,
    # as a Decimal; a JSON string is a 400).
    amount: Charge
    app_id: AppId
    description: Text
    idempotency_key: Key | None = None
    metadata: dict[str, Any] | None = None


class InternalUseCredits(UseCredits, kw_only=True):
    user_id: UserId


class InternalRefund(msgspec.Struct, rename="camel", kw_only=True):
    user_id: UserId
    amount: Amount
    description: Text
    app_id: AppId | None = None
    transaction_id: str | None = None
    idempotency_key: Key | None = None
    metadata: dict[str, Any] | None = None


class InternalGrant(msgspec.Struct, rename="camel", kw_only=True):
    user_id: UserId
    amount: Amount
    reason: Text
    reference_id: Key
    description: Text | None = None


class InternalInit(msgspec.Struct, rename="camel", kw_only=True):
    user_id: UserId


# Holds: reserve, commit (0 spends nothing and releases the hold), release. Without ttlSeconds a hold
# lasts what HOLD_TTL_DEFAULTS gives the calling app.
Ttl = Annotated[int, msgspec.Meta(ge=1, le=MAX_HOLD_TTL_SECONDS)]
# 0 is allowed on commit: nothing is spent and the whole hold is released.
CommitAmount = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
ReservationId = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class Reserve(msgspec.Struct, rename="camel", kw_only=True):
    user_id: UserId
    amount: Amount
    reason: Text
    ttl_seconds: Ttl | None = None


class Commit(msgspec.Struct, rename="camel", kw_only=True):
    reservation_id: ReservationId
    amount: CommitAmount | None = None
    description: Text | None = None


class ReleaseReservation(msgspec.Struct, rename="camel", kw_only=True):
    reservation_id: ReservationId


# ---- answers ----


class SpentBalance(msgspec.Struct, rename="camel", kw_only=True):
    balance: int
    total_spent: int


class UseResult(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    success: bool
    # A fractional charge that completes no whole credit writes no ledger row: null.
    transaction: Transaction | None
    new_balance: SpentBalance
    # A fractional charge: what is accrued for this app afterwards, not yet billed (absent otherwise).
    accrued: float | None = None

    @classmethod
    def of(cls, entry: Entry) -> UseResult:
        _, total_spent = shown_totals(entry.total_earned, entry.total_spent)
        spent = SpentBalance(balance=entry.balance, total_spent=total_spent)
        return cls(success=True, transaction=entry.transaction, new_balance=spent)

    @classmethod
    def accrued_by(cls, done: Accrued) -> UseResult:
        spent = SpentBalance(balance=done.balance.balance, total_spent=done.balance.total_spent)
        transaction = done.entry.transaction if done.entry else None
        return cls(success=True, transaction=transaction, new_balance=spent, accrued=float(done.accrued))


class NewBalance(msgspec.Struct, rename="camel", kw_only=True):
    balance: int


class RefundResult(msgspec.Struct, rename="camel", kw_only=True):
    success: bool
    transaction: Transaction
    new_balance: NewBalance


class GrantResult(msgspec.Struct, rename="camel", kw_only=True):
    ok: bool
    already_granted: bool
    new_balance: int
    transaction_id: str


class Reservation(msgspec.Struct, rename="camel", kw_only=True):
    reservation_id: UUID
    balance: int
    expires_at: datetime


class CommitResult(msgspec.Struct, rename="camel", kw_only=True):
    success: bool
    # Null when the commit spent nothing (amount 0 releases the hold).
    transaction_id: UUID | None


class ReleaseResult(msgspec.Struct, rename="camel", kw_only=True):
    success: bool
    balance: int


class Operation(msgspec.Struct, rename="camel", kw_only=True):
    id: str
    name: str
    category: str
    credits: int
    unit: str | None = None


class UsageDay(msgspec.Struct, rename="camel", kw_only=True):
    """Credits one app used on one day (GET /usage)."""

    date: date
    app_id: str
    credits: int


class Usage(msgspec.Struct, rename="camel", kw_only=True):
    days: int
    timezone: str
    # First and last day of the window (both included).
    start: date
    end: date
    total: int
    # Only days and apps with usage; newest day last.
    items: list[UsageDay]
