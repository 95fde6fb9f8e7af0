"""The pieces of SQL every ledger write is made of, written once (the package header says the rule).

A statement first moves the balance (`spend` for a debit), then names one row per ledger row to write in
a CTE `moves`, with the columns of MOVE_COLUMNS, and ends with WRITES: the ledger rows, and a usage row for
each move that counts as usage. Ledger ids are chosen by the caller (`new_ids`) before the statement is
sent.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any
from uuid import UUID

import msgspec

# moves: id uuid, user_id text, type transaction_type, amount integer (signed as in the ledger: a debit is
# negative), balance_after (the balance right after this row), app_id, description, metadata jsonb,
# idempotency_key text, record_usage boolean (a usage row too).
MOVE_COLUMNS = (
    "id, user_id, type, amount, balance_after, app_id, description, metadata, idempotency_key, record_usage"
)

# usage_stats.date is the calendar day as the old service counted it: local midnight in its container's
# zone (TZ=Europe/Berlin in Mana's compose file), stored as a timestamptz.
USAGE_DAY = "date_trunc('day', now(), 'Europe/Berlin')"

WRITES = f"""tx AS (
  INSERT INTO credits.transactions
    (id, user_id, type, status, amount, balance_before, balance_after, app_id, description, metadata,
     idempotency_key, completed_at)
  SELECT m.id, m.user_id, m.type, 'completed', m.amount, m.balance_after - m.amount, m.balance_after,
         m.app_id, m.description, m.metadata, m.idempotency_key, now()
  FROM moves m
  RETURNING *
), usage AS (
  INSERT INTO credits.usage_stats (user_id, app_id, credits_used, date, metadata)
  SELECT m.user_id, m.app_id, -m.amount, {USAGE_DAY}, m.metadata FROM moves m WHERE m.record_usage
)"""


def spend(amount: str, *, where: str, returning: str, source: str = "", released: str = "") -> str:
    """The balance move of a debit: `amount` (> 0) leaves the balance for `total_spent`. `released`: the
    credits of a hold that come back from `reserved` first (settling a hold). `source`: a FROM list."""
    back = f" + {released}, reserved = bal.reserved - {released}" if released else ""
    return f"""
  UPDATE credits.balances bal
  SET balance = bal.balance - {amount}{back}, total_spent = bal.total_spent + {amount},
      version = bal.version + 1, updated_at = now()
  {f"FROM {source}" if source else ""}
  WHERE {where}
  RETURNING {returning}"""


def one_move(first: int, *, amount: str, type: str, record_usage: str) -> str:
    """`moves` with one row for the account $1 after the balance move `b` (which returns its `balance`):
    id, app id, description, metadata and idempotency key are the parameters first..first+4."""
    id_, app, description, metadata, key = (f"${first + i}" for i in range(5))
    return f"""moves AS (
  SELECT {id_}::uuid AS id, $1::text AS user_id, {type}::public.transaction_type AS type, {amount} AS amount,
         b.balance AS balance_after, {app}::text AS app_id, {description}::text AS description,
         {metadata}::jsonb AS metadata, {key}::text AS idempotency_key, {record_usage} AS record_usage
  FROM b
)"""


def new_ids(count: int) -> list[UUID]:
    """`count` random (version 4) ledger ids, from one read of the system's randomness."""
    raw = os.urandom(16 * count)
    return [UUID(bytes=raw[16 * i : 16 * i + 16], version=4) for i in range(count)]


def json_texts(values: Iterable[dict[str, Any] | None]) -> list[str | None]:
    """Metadata as JSON text, for a text[] parameter that the statement casts to jsonb row by row."""
    return [None if value is None else msgspec.json.encode(value).decode() for value in values]
