"""Many debits in one statement (renewal runs): each covered balance moves with its ledger row and its
usage row; an uncovered one changes nothing. Same rules as `repository.debit`, one round trip per batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import msgspec

from mana_credits.db.pool import Conn
from mana_credits.kit import money_metrics
from mana_credits.ledger.repository import USAGE_DAY
from mana_credits.ledger.schemas import TxType

_DEBIT_MANY = (
    """
WITH req AS (
  SELECT * FROM unnest($1::text[], $2::integer[], $3::text[], $4::text[], $5::text[])
    AS r(user_id, amount, description, metadata, idempotency_key)
), b AS (
  UPDATE credits.balances bal
  SET balance = bal.balance - req.amount, total_spent = bal.total_spent + req.amount,
      version = bal.version + 1, updated_at = now()
  FROM req
  WHERE bal.user_id = req.user_id AND bal.balance >= req.amount
  RETURNING bal.user_id, bal.balance, req.amount, req.description, req.metadata::jsonb AS metadata,
            req.idempotency_key
), tx AS (
  INSERT INTO credits.transactions
    (user_id, type, status, amount, balance_before, balance_after, app_id, description, metadata,
     idempotency_key, completed_at)
  SELECT b.user_id, $6::public.transaction_type, 'completed', -b.amount, b.balance + b.amount, b.balance,
         $7, b.description, b.metadata, b.idempotency_key, now()
  FROM b
  RETURNING user_id, id
), usage AS (
  INSERT INTO credits.usage_stats (user_id, app_id, credits_used, date, metadata)
  SELECT b.user_id, $7, b.amount, """
    + USAGE_DAY
    + """, b.metadata FROM b WHERE $8::boolean
)
SELECT user_id, id FROM tx
"""
)


@dataclass(frozen=True, slots=True)
class DebitItem:
    user_id: str
    amount: int
    description: str
    metadata: dict[str, Any] | None = None
    idempotency_key: str | None = None


async def debit_many(
    conn: Conn, items: list[DebitItem], *, type: TxType, app_id: str, record_usage: bool = False
) -> dict[str, UUID]:
    """Debit every item whose balance covers it; returns {user id: transaction id} of those debited.

    Users must be distinct within one call (one balance row, one change).
    """
    if not items:
        return {}
    assert len({item.user_id for item in items}) == len(items), "one debit per user per call"
    assert all(item.amount > 0 for item in items)
    rows = await conn.fetch(
        _DEBIT_MANY,
        [item.user_id for item in items],
        [item.amount for item in items],
        [item.description for item in items],
        [None if item.metadata is None else msgspec.json.encode(item.metadata).decode() for item in items],
        [item.idempotency_key for item in items],
        type.value,
        app_id,
        record_usage,
    )
    debited = {row["user_id"]: row["id"] for row in rows}
    money_metrics.moved(-sum(item.amount for item in items if item.user_id in debited), app_id, type.value)
    if len(debited) < len(items):
        money_metrics.INSUFFICIENT.labels(app_id).inc(len(items) - len(debited))
    return debited
