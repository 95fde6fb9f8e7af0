"""Many debits in one statement (renewal runs): each covered balance moves with its ledger row and its
usage row; an uncovered one changes nothing. Same rules as `repository.debit`, one round trip per batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from mana_credits.db.pool import Conn
from mana_credits.kit import money_metrics
from mana_credits.ledger.rule import MOVE_COLUMNS, WRITES, json_texts, new_ids, spend
from mana_credits.ledger.schemas import TxType

_COVERED = "bal.user_id = req.user_id AND bal.balance >= req.amount"
_TAKEN = "bal.user_id, bal.balance, req.amount, req.description, req.metadata, req.idempotency_key, req.id"
_DEBIT_MANY = f"""
WITH req AS (
  SELECT * FROM unnest($1::text[], $2::integer[], $3::text[], $4::text[], $5::text[], $6::uuid[])
    AS r(user_id, amount, description, metadata, idempotency_key, id)
), b AS ({spend("req.amount", source="req", where=_COVERED, returning=_TAKEN)}
), moves ({MOVE_COLUMNS}) AS (
  SELECT b.id, b.user_id, $7::public.transaction_type, -b.amount, b.balance, $8::text, b.description,
         b.metadata::jsonb, b.idempotency_key, $9::boolean
  FROM b
), {WRITES}
SELECT user_id, id FROM tx
"""


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
        json_texts(item.metadata for item in items),
        [item.idempotency_key for item in items],
        new_ids(len(items)),
        type.value,
        app_id,
        record_usage,
    )
    debited = {row["user_id"]: row["id"] for row in rows}
    money_metrics.moved(-sum(item.amount for item in items if item.user_id in debited), app_id, type.value)
    if len(debited) < len(items):
        money_metrics.refused(app_id, len(items) - len(debited))
    return debited
