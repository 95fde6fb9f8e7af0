"""The statement as the API and `--format json` show it."""

from __future__ import annotations

from datetime import datetime

import msgspec


class Position(msgspec.Struct, rename="camel", kw_only=True):
    """Outstanding credits at one instant: what is spendable plus what open holds keep aside."""

    outstanding: int
    balance: int
    reserved: int
    users: int  # accounts holding a non-zero amount


class Flow(msgspec.Struct, rename="camel", kw_only=True):
    kind: str
    label: str
    detail: str
    direction: str  # "in" or "out" of the outstanding credits
    count: int
    credits: int  # never negative; the direction says which way
    euro_cents: int | None = None  # purchases: what Stripe was paid for them


class Holds(msgspec.Struct, rename="camel", kw_only=True):
    """Holds move credits inside the outstanding amount (balance to reserved and back): not flows. A
    commit's spent part is a usage flow."""

    opened: int
    opened_credits: int
    committed: int
    committed_credits: int
    released: int
    released_credits: int
    reserved_at_opening: int
    reserved_at_closing: int


class ErasedAccounts(msgspec.Struct, rename="camel", kw_only=True):
    """Erasure keeps balances (they are owed): accounts erased in the month and all erased accounts that
    still hold credits at closing, with those credits."""

    erased_in_month: int
    erased_in_month_credits: int
    holding_at_closing: int
    credits_at_closing: int


class UserDifference(msgspec.Struct, rename="camel", kw_only=True):
    user_id: str
    difference: int


class Problem(msgspec.Struct, rename="camel", kw_only=True):
    """A check that failed: what it found, by how much, and the users (or rows) it comes from."""

    check: str
    message: str
    difference: int
    users: list[UserDifference] = []
    user_count: int = 0


class Statement(msgspec.Struct, rename="camel", kw_only=True):
    month: str
    timezone: str
    start: datetime
    end: datetime
    opening: Position
    closing: Position
    inflow: int
    outflow: int
    flows: list[Flow]
    holds: Holds
    erased_accounts: ErasedAccounts
    reconciled: bool
    problems: list[Problem]
