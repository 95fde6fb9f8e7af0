"""Fractional usage: a charge of up to three decimals (apps/api bills 0.1 credit per local chat) accrues per
user and app in `credits.usage_accruals`; whenever the accrued amount reaches whole credits, they are
billed as one usage row through the debit rule (the group statement, ledger.group), in the same
transaction as the accrual, with `metadata.accrual` naming what it rolled up and a row in
`credits.accrual_rollups`.

A charge is refused with InsufficientCredits (402), changing nothing, when the balance cannot pay the
whole credits it completes, or, when something stays accrued, the whole credit it accrues toward (so
an account cannot run up fractions it will never pay). Exact decimals throughout: ten charges of 0.1
bill one credit, once.

Charges are decided together (`charge_all`, any number of accounts, in arrival order): the accrual rows,
then the balance rows, are locked in key order (the order the erasure takes them too), each charge is
decided against its account's running balance and its app's running accrual, and the whole credits and
the new accruals are written in two statements. The keyless charges of a process go through one such
transaction at a time (ledger.fraction_commit), as the whole-credit debits go through the group commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec

from mana_credits.db.pool import Conn
from mana_credits.kit import money_metrics
from mana_credits.kit.errors import InsufficientCredits
from mana_credits.ledger.group import SKIPPED, Skipped, UsageDebit, apply_batch
from mana_credits.ledger.rule import new_ids
from mana_credits.ledger.schemas import Balance, Entry

QUANTUM = Decimal("0.001")


@dataclass(frozen=True, slots=True)
class Charge:
    """A fractional usage charge (`amount` > 0, at most three decimals)."""

    user_id: str
    amount: Decimal
    app_id: str
    description: str
    metadata: dict[str, Any] | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Accrued:
    """What a fractional charge did: the rollup's ledger write (None when nothing was billed), what is
    accrued for the app afterwards, the balance afterwards."""

    entry: Entry | None
    accrued: Decimal
    balance: Balance


Decided = Accrued | InsufficientCredits | Skipped


def decide(accrued: Decimal, amount: Decimal, balance: int) -> tuple[int, Decimal] | InsufficientCredits:
    """One charge against its app's accrual and its account's balance: the whole credits it bills now and
    what stays accrued, or why it is refused."""
    total = accrued + amount
    whole = int(total)  # the floor, as total > 0
    rest = total - whole
    if whole and whole > balance:
        return InsufficientCredits(required=whole, available=balance)
    if rest and balance - whole < 1:
        return InsufficientCredits(required=1, available=balance - whole)
    return whole, rest


# The accrual rows of the pairs ($1 users, $2 apps), locked in key order; a pair seen for the first time
# gets its row (locked by being inserted). A pair whose row another session inserted and has not
# committed, or (skipping) holds, is missing from the result.
def _lock_accruals(lock: str) -> str:
    return f"""
WITH p AS (SELECT * FROM unnest($1::text[], $2::text[]) AS p(user_id, app_id)),
new AS (
  INSERT INTO credits.usage_accruals (user_id, app_id)
  SELECT user_id, app_id FROM p ORDER BY user_id, app_id
  ON CONFLICT (user_id, app_id) DO NOTHING
  RETURNING user_id, app_id, accrued, charges
), old AS (
  SELECT a.user_id, a.app_id, a.accrued, a.charges
  FROM credits.usage_accruals a JOIN p USING (user_id, app_id)
  ORDER BY a.user_id, a.app_id
  {lock}
)
SELECT * FROM new UNION ALL SELECT * FROM old
"""


def _lock_balances(lock: str) -> str:
    return f"""
SELECT user_id, balance, total_earned, total_spent, reserved FROM credits.balances
WHERE user_id = ANY($1::text[]) ORDER BY user_id {lock}
"""


_LOCKS = {
    False: (_lock_accruals("FOR UPDATE OF a"), _lock_balances("FOR UPDATE")),
    True: (_lock_accruals("FOR UPDATE OF a SKIP LOCKED"), _lock_balances("FOR UPDATE SKIP LOCKED")),
}

# The accruals of the charges taken, and the rollup rows beside their ledger rows.
_WRITE = """
WITH r AS (
  INSERT INTO credits.accrual_rollups (transaction_id, user_id, app_id, credits)
  SELECT * FROM unnest($7::uuid[], $8::text[], $9::text[], $10::integer[])
)
UPDATE credits.usage_accruals a
SET charged = a.charged + u.charged, billed = a.billed + u.billed, accrued = u.accrued,
    charges = u.charges, updated_at = now()
FROM unnest($1::text[], $2::text[], $3::numeric[], $4::bigint[], $5::numeric[], $6::bigint[])
  AS u(user_id, app_id, charged, billed, accrued, charges)
WHERE a.user_id = u.user_id AND a.app_id = u.app_id
"""


@dataclass(slots=True)
class _Account:
    balance: int
    total_earned: int
    total_spent: int
    reserved: int


@dataclass(slots=True)
class _Accrual:
    accrued: Decimal
    charges: int  # since the last rollup
    charged: Decimal = Decimal(0)  # by this transaction
    billed: int = 0


async def charge_all(conn: Conn, items: Sequence[Charge], *, skip_locked: bool = False) -> list[Decided]:
    """Decide and apply `items` (any accounts and apps, arrival order) in the caller's transaction; one
    outcome per item. With `skip_locked`, the charges whose rows another session holds are SKIPPED."""
    assert all(item.amount > 0 and item.amount == item.amount.quantize(QUANTUM) for item in items)
    lock_accruals, lock_balances = _LOCKS[skip_locked]
    pairs = sorted({(item.user_id, item.app_id) for item in items})
    accruals: dict[tuple[str, str], _Accrual] = {}
    for _ in range(1 if skip_locked else 2):
        wanted = [pair for pair in pairs if pair not in accruals]
        rows = await conn.fetch(lock_accruals, [user for user, _ in wanted], [app for _, app in wanted])
        accruals.update({(r["user_id"], r["app_id"]): _Accrual(r["accrued"], r["charges"]) for r in rows})
        # Missing without skipping: inserted by another session that committed while the statement
        # looked, so the next statement sees it.
        if len(accruals) == len(pairs):
            break
    rows = await conn.fetch(lock_balances, sorted({user for user, _ in accruals}))
    accounts = {
        row["user_id"]: _Account(row["balance"], row["total_earned"], row["total_spent"], row["reserved"])
        for row in rows
    }
    if not skip_locked:  # not locked: there is no row, so nothing to pay with
        accounts.update({user: _Account(0, 0, 0, 0) for user, _ in accruals if user not in accounts})
    outcomes: list[Decided] = []
    rollups: list[tuple[int, UsageDebit]] = []  # (the outcome's place, its ledger debit)
    for item in items:
        accrual, account = accruals.get((item.user_id, item.app_id)), accounts.get(item.user_id)
        if accrual is None or account is None:
            outcomes.append(SKIPPED)
            continue
        decided = decide(accrual.accrued, item.amount, account.balance)
        if isinstance(decided, InsufficientCredits):
            money_metrics.refused(item.app_id)
            outcomes.append(decided)
            continue
        whole, rest = decided
        charges = accrual.charges + 1
        if whole:
            rolled = {"credits": whole, "charges": charges, "accruedBefore": str(accrual.accrued),
                      "charged": str(item.amount)}  # fmt: skip
            metadata = {**(item.metadata or {}), "accrual": rolled}
            debit = UsageDebit(item.user_id, whole, item.app_id, item.description, metadata,
                               item.idempotency_key)  # fmt: skip
            rollups.append((len(outcomes), debit))
            account.balance -= whole
            account.total_spent += whole
            charges = 0
        accrual.accrued, accrual.charges = rest, charges
        accrual.charged += item.amount
        accrual.billed += whole
        balance = Balance(balance=account.balance, total_earned=account.total_earned,
                          total_spent=account.total_spent, reserved=account.reserved)  # fmt: skip
        outcomes.append(Accrued(entry=None, accrued=rest, balance=balance))
    ids = new_ids(len(rollups))
    if rollups:
        entries = await apply_batch(conn, [debit for _, debit in rollups], ids=ids)
        for (place, _), entry in zip(rollups, entries, strict=True):
            # The rows are locked and the balances were decided above: every rollup is paid.
            assert isinstance(entry, Entry), entry
            done = outcomes[place]
            assert isinstance(done, Accrued) and done.balance.balance == entry.balance
            outcomes[place] = Accrued(entry=entry, accrued=done.accrued, balance=done.balance)
    touched = [(pair, a) for pair, a in accruals.items() if a.charged]
    if touched:
        await conn.execute(
            _WRITE,
            [user for (user, _), _ in touched],
            [app for (_, app), _ in touched],
            [a.charged for _, a in touched],
            [a.billed for _, a in touched],
            [a.accrued for _, a in touched],
            [a.charges for _, a in touched],
            ids,
            [debit.user_id for _, debit in rollups],
            [debit.app_id for _, debit in rollups],
            [debit.amount for _, debit in rollups],
        )
    return outcomes


def one(outcomes: list[Decided]) -> Accrued:
    """The outcome of a lone charge (never skipped: nothing skips without skip_locked); raises its 402."""
    [outcome] = outcomes
    if isinstance(outcome, InsufficientCredits):
        raise outcome
    assert isinstance(outcome, Accrued)
    return outcome


async def charge(conn: Conn, item: Charge) -> Accrued:
    """One charge in the caller's transaction (a charge with an Idempotency-Key, whose answer is stored in
    the same transaction); raises InsufficientCredits, changing nothing."""
    return one(await charge_all(conn, [item]))


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
