"""Erase what ledger rows say about a person, never what they add up to (account deletion)."""

from __future__ import annotations

from mana_credits.db.pool import Conn, rows_changed


async def erase_personal_data(conn: Conn, user_id: str, *, gift_rows_of_others: list[str]) -> int:
    """Descriptions become the row's type, metadata keeps only ids (`credits.erased_metadata`, the rule
    the tombstone's triggers apply to later rows too); usage statistics lose their metadata. Recipients'
    rows of gifts this user sent lose the sender's name (the old service wrote the address)."""
    own = await conn.execute(
        """
        UPDATE credits.transactions t
        SET description = initcap(t.type::text), metadata = credits.erased_metadata(t.metadata)
        WHERE t.user_id = $1
          AND (t.description <> initcap(t.type::text)
               OR t.metadata IS DISTINCT FROM credits.erased_metadata(t.metadata))
        """,
        user_id,
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
