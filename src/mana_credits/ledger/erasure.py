"""Erase what ledger rows say about a person, never what they add up to (account deletion)."""

from __future__ import annotations

from mana_credits.db.pool import Conn, rows_changed

# Metadata keys that are references for bookkeeping (ids), kept; everything else in metadata goes.
KEPT_METADATA = ("purchaseId", "paymentIntentId", "checkoutSessionId", "reservationId", "giftCodeId",
                 "refundOf", "referenceId", "period", "disputeId")  # fmt: skip


async def erase_personal_data(conn: Conn, user_id: str, *, gift_rows_of_others: list[str]) -> int:
    """Descriptions become the row's type, metadata keeps only ids; usage statistics lose their metadata.
    Recipients' rows of gifts this user sent lose the sender's name (the old service wrote the address)."""
    own = await conn.execute(
        """
        WITH kept AS (
          -- The old service's metadata may be any JSON (an array, a string): only an object keeps ids.
          SELECT t.id, CASE WHEN jsonb_typeof(t.metadata) = 'object' THEN
                         (SELECT jsonb_object_agg(key, value) FROM jsonb_each(t.metadata)
                          WHERE key = ANY($2::text[])) END AS metadata
          FROM credits.transactions t WHERE t.user_id = $1
        )
        UPDATE credits.transactions t SET description = initcap(t.type::text), metadata = kept.metadata
        FROM kept
        WHERE t.id = kept.id AND t.user_id = $1
          AND (t.description <> initcap(t.type::text) OR t.metadata IS DISTINCT FROM kept.metadata)
        """,
        user_id,
        list(KEPT_METADATA),
    )
    usage = await conn.execute(
        "UPDATE credits.usage_stats SET metadata = NULL WHERE user_id = $1 AND metadata IS NOT NULL", user_id
    )
    others = await conn.execute(
        """
        UPDATE credits.transactions SET description = 'Gift received'
        WHERE id = ANY($1::uuid[]) AND description <> 'Gift received'
        """,
        gift_rows_of_others,
    )
    return sum(rows_changed(status) for status in (own, usage, others))
