"""Ledger SQL. Each money move is one statement: the balance row and its transaction row change together.

Totals: `total_earned` grows with purchases, gifts received and grants and shrinks with reversals;
`total_spent` grows with usage and gifts given and shrinks with refunds (a cancelled gift is one) and
returned expired gifts. So `total_earned - total_spent` always equals the ledger sum, and a refund no
longer inflates `total_earned` as it did in the old service.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from mana_credits.db.pool import Conn
from mana_credits.kit import money_metrics
from mana_credits.kit.errors import InsufficientCredits
from mana_credits.ledger.rule import WRITES, new_ids, one_move, spend
from mana_credits.ledger.schemas import AccountSummary, Balance, BalanceRow, Entry, Transaction, TxType

# Positive rows that give back what was spent rather than earn anything (audit.py counts them the same way).
RETURNS = (TxType.REFUND, TxType.EXPIRY)


_RESULT = """
SELECT tx.*, b.balance AS new_balance, b.total_earned AS new_total_earned, b.total_spent AS new_total_spent
FROM tx, b
"""
_TOTALS = "bal.balance, bal.total_earned, bal.total_spent"

# Conditional debit: succeeds only when the balance covers the amount (a negative balance blocks all).
_DEBIT = f"""
WITH b AS ({spend("$2", where="bal.user_id = $1 AND bal.balance >= $2", returning=_TOTALS)}
), {one_move(5, amount="-$2::integer", type="$4", record_usage="$3::boolean")}, {WRITES}
{_RESULT}"""

# A hold's commit: `used` ($2) of the hold's `held` ($3) is spent, the rest goes back to the balance.
_SETTLE = f"""
WITH b AS ({spend("$2::integer", released="$3::integer", where="bal.user_id = $1", returning=_TOTALS)}
), {one_move(4, amount="-$2::integer", type="'usage'", record_usage="true")}, {WRITES}
{_RESULT}"""

# Unconditional change ($2 signed) with the totals moved by $3 (earned) and $4 (spent); creates the row.
_APPLY = f"""
WITH b AS (
  INSERT INTO credits.balances AS cur (user_id, balance, total_earned, total_spent)
  VALUES ($1, $2, $3, $4)
  ON CONFLICT (user_id) DO UPDATE
  SET balance = cur.balance + EXCLUDED.balance,
      total_earned = cur.total_earned + EXCLUDED.total_earned,
      total_spent = cur.total_spent + EXCLUDED.total_spent,
      version = cur.version + 1,
      updated_at = now()
  RETURNING balance, total_earned, total_spent
), {one_move(6, amount="$2::integer", type="$5", record_usage="false")}, {WRITES}
{_RESULT}"""

# What a balance read adds: fractional usage accrued but not billed (ledger.accrual), over the user's apps.
_ACCRUED = (
    "(SELECT COALESCE(SUM(a.accrued), 0) FROM credits.usage_accruals a WHERE a.user_id = b.user_id) "
    "AS accrued"
)
_BALANCE = (
    f"SELECT balance, total_earned, total_spent, reserved, {_ACCRUED} FROM credits.balances b "
    "WHERE user_id = $1"
)


def _entry(row: asyncpg.Record) -> Entry:
    """The answer of a statement that moved one account by one ledger row, checked against the invariant
    where it was decided (the package header): the row chains before → after, and the balance is after."""
    assert row["balance_before"] + row["amount"] == row["balance_after"] == row["new_balance"], row
    return Entry(
        transaction=Transaction.from_row(row),
        balance=row["new_balance"],
        total_earned=row["new_total_earned"],
        total_spent=row["new_total_spent"],
    )


async def get_balance(conn: Conn, user_id: str, *, create: bool = True) -> Balance:
    """The user's balance; a user without a row gets zeros (and, with `create`, a row)."""
    row = await conn.fetchrow(_BALANCE, user_id)
    if row is None and create:
        await conn.execute(
            "INSERT INTO credits.balances (user_id) VALUES ($1) ON CONFLICT (user_id) DO NOTHING", user_id
        )
    return Balance.from_row(row)


async def get_balances(conn: Conn, user_ids: list[str]) -> list[Balance]:
    """The balances of `user_ids` (repeats allowed, answered in order) in one query; as `get_balance`, a
    user without a row gets zeros and a row."""
    rows = await conn.fetch(
        f"SELECT user_id, balance, total_earned, total_spent, reserved, {_ACCRUED} FROM credits.balances b "
        "WHERE user_id = ANY($1::text[])",
        user_ids,
    )
    found = {row["user_id"]: Balance.from_row(row) for row in rows}
    missing = sorted(set(user_ids) - found.keys())  # sorted: two such inserts never wait crosswise
    if missing:
        await conn.execute(
            "INSERT INTO credits.balances (user_id) SELECT unnest($1::text[]) "
            "ON CONFLICT (user_id) DO NOTHING",
            missing,
        )
    zeros = Balance.from_row(None)
    return [found.get(user_id, zeros) for user_id in user_ids]


async def init_balance(conn: Conn, user_id: str) -> BalanceRow:
    """The user's balance row, created with zeros if missing (registration)."""
    row = await conn.fetchrow(
        "INSERT INTO credits.balances (user_id) VALUES ($1) ON CONFLICT (user_id) DO NOTHING RETURNING *",
        user_id,
    )
    # Not inserted: the row exists, perhaps committed by a concurrent init after this statement's
    # snapshot, so read it in a statement of its own.
    row = row or await conn.fetchrow("SELECT * FROM credits.balances WHERE user_id = $1", user_id)
    assert row is not None
    return BalanceRow.from_record(row)


async def account_summary(conn: Conn, user_id: str) -> AccountSummary:
    """Balance and ledger row count; a user without a row gets zeros (no row is created)."""
    row = await conn.fetchrow(
        """
        SELECT COALESCE(b.balance, 0) AS balance, COALESCE(b.total_earned, 0) AS total_earned,
               COALESCE(b.total_spent, 0) AS total_spent, COALESCE(b.reserved, 0) AS reserved,
               (SELECT count(*) FROM credits.transactions t WHERE t.user_id = $1) AS transactions_count,
               (SELECT COALESCE(SUM(a.accrued), 0) FROM credits.usage_accruals a WHERE a.user_id = $1)
                 AS accrued
        FROM (SELECT 1) AS one LEFT JOIN credits.balances b ON b.user_id = $1
        """,
        user_id,
    )
    assert row is not None
    return AccountSummary.from_record(row)


async def _insufficient(conn: Conn, user_id: str, amount: int) -> InsufficientCredits:
    available = await conn.fetchval("SELECT balance FROM credits.balances WHERE user_id = $1", user_id)
    return InsufficientCredits(required=amount, available=available or 0)


async def debit(
    conn: Conn,
    user_id: str,
    amount: int,
    *,
    type: TxType,
    app_id: str,
    description: str,
    metadata: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    record_usage: bool = False,
    tx_id: UUID | None = None,
) -> Entry:
    """Take `amount` (> 0) from the balance, or raise InsufficientCredits and change nothing. `tx_id`:
    the ledger id, when the caller must be able to look the debit up after a lost connection."""
    tx_id = tx_id or new_ids(1)[0]
    row = await conn.fetchrow(
        _DEBIT,
        user_id,
        amount,
        record_usage,
        type.value,
        tx_id,
        app_id,
        description,
        metadata,
        idempotency_key,
    )
    if row is None:
        money_metrics.refused(app_id)
        raise await _insufficient(conn, user_id, amount)
    money_metrics.moved(-amount, app_id, type.value)
    return _entry(row)


async def _apply(
    conn: Conn,
    user_id: str,
    amount: int,
    earned: int,
    spent: int,
    *,
    type: TxType,
    app_id: str,
    description: str,
    metadata: dict[str, Any] | None,
    idempotency_key: str | None,
) -> Entry:
    [tx_id] = new_ids(1)
    row = await conn.fetchrow(
        _APPLY,
        user_id,
        amount,
        earned,
        spent,
        type.value,
        tx_id,
        app_id,
        description,
        metadata,
        idempotency_key,
    )
    assert row is not None
    money_metrics.moved(amount, app_id, type.value)
    return _entry(row)


async def credit(
    conn: Conn,
    user_id: str,
    amount: int,
    *,
    type: TxType,
    app_id: str,
    description: str,
    metadata: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> Entry:
    """Add `amount` (> 0). A refund or an expired gift's return lowers `total_spent` (it undoes a spend);
    everything else raises `total_earned`."""
    assert amount > 0
    earned, spent = (0, -amount) if type in RETURNS else (amount, 0)
    return await _apply(
        conn,
        user_id,
        amount,
        earned,
        spent,
        type=type,
        app_id=app_id,
        description=description,
        metadata=metadata,
        idempotency_key=idempotency_key,
    )


async def take_back(
    conn: Conn,
    user_id: str,
    amount: int,
    *,
    app_id: str,
    description: str,
    metadata: dict[str, Any] | None = None,
    type: TxType = TxType.REVERSAL,
) -> Entry:
    """Remove `amount` (> 0) whatever the balance (Stripe refunds, disputes): it may go negative."""
    assert amount > 0
    return await _apply(
        conn,
        user_id,
        -amount,
        -amount,
        0,
        type=type,
        app_id=app_id,
        description=description,
        metadata=metadata,
        idempotency_key=None,
    )


async def hold(conn: Conn, user_id: str, amount: int) -> Balance:
    """Move `amount` from `balance` to `reserved`, or raise InsufficientCredits. No ledger row yet."""
    row = await conn.fetchrow(
        """
        UPDATE credits.balances
        SET balance = balance - $2, reserved = reserved + $2, version = version + 1, updated_at = now()
        WHERE user_id = $1 AND balance >= $2
        RETURNING balance, total_earned, total_spent, reserved
        """,
        user_id,
        amount,
    )
    if row is None:
        raise await _insufficient(conn, user_id, amount)
    return Balance.from_row(row)


async def release_hold(conn: Conn, user_id: str, amount: int) -> Balance:
    """Give held credits back to the balance."""
    row = await conn.fetchrow(
        """
        UPDATE credits.balances
        SET balance = balance + $2, reserved = reserved - $2, version = version + 1, updated_at = now()
        WHERE user_id = $1
        RETURNING balance, total_earned, total_spent, reserved
        """,
        user_id,
        amount,
    )
    assert row is not None
    return Balance.from_row(row)


async def settle_hold(
    conn: Conn,
    user_id: str,
    held: int,
    used: int,
    *,
    app_id: str,
    description: str,
    metadata: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> Entry:
    """Spend `used` (1..held) of a hold as a usage row and release the rest, in one statement.

    The row's `balanceBefore` is the balance as if the hold had not been taken, so
    `balanceAfter = balanceBefore + amount` and equals the balance the user sees afterwards.
    """
    assert 0 < used <= held
    [tx_id] = new_ids(1)
    row = await conn.fetchrow(
        _SETTLE, user_id, used, held, tx_id, app_id, description, metadata, idempotency_key
    )
    money_metrics.moved(-used, app_id, "usage")
    assert row is not None
    return _entry(row)
