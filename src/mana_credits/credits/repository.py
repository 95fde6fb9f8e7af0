"""Reads of the ledger for the history endpoints, and the refund bookkeeping for a usage row."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from mana_credits.db.pool import Conn
from mana_credits.ledger.models import Transaction


async def list_transactions(
    conn: Conn,
    user_id: str,
    *,
    limit: int,
    offset: int,
    after: tuple[datetime, UUID] | None,
    type_: str | None,
    app_id: str | None,
) -> list[Transaction]:
    """Newest first; keyset (`after` = the last row seen) or offset paging."""
    conditions = ["user_id = $1"]
    args: list[object] = [user_id]
    if type_ is not None:
        args.append(type_)
        conditions.append(f"type = ${len(args)}::public.transaction_type")
    if app_id is not None:
        args.append(app_id)
        conditions.append(f"app_id = ${len(args)}")
    if after is not None:
        args.extend(after)
        conditions.append(f"(created_at, id) < (${len(args) - 1}, ${len(args)})")
    args.extend([limit, offset])
    rows = await conn.fetch(
        f"SELECT * FROM credits.transactions WHERE {' AND '.join(conditions)} "
        f"ORDER BY created_at DESC, id DESC LIMIT ${len(args) - 1} OFFSET ${len(args)}",
        *args,
    )
    return [Transaction.from_row(row) for row in rows]


async def lock_usage(conn: Conn, transaction_id: UUID, user_id: str) -> asyncpg.Record | None:
    """Lock a usage row so concurrent refunds of it are serialized."""
    return await conn.fetchrow(
        "SELECT id, amount FROM credits.transactions "
        "WHERE id = $1 AND user_id = $2 AND type = 'usage' AND status = 'completed' FOR UPDATE",
        transaction_id,
        user_id,
    )


async def refunded_so_far(conn: Conn, transaction_id: UUID, user_id: str) -> int:
    total = await conn.fetchval(
        "SELECT COALESCE(SUM(amount), 0) FROM credits.transactions "
        "WHERE user_id = $1 AND type = 'refund' AND metadata->>'refundOf' = $2",
        user_id,
        str(transaction_id),
    )
    return int(total)


async def usage_per_day(conn: Conn, user_id: str, *, since: datetime, tz: str) -> list[asyncpg.Record]:
    """Credits used per local day (in `tz`) and app since `since`: the rows of `usage_stats`."""
    return await conn.fetch(
        """
        SELECT (date AT TIME ZONE $3)::date AS day, app_id, sum(credits_used)::bigint AS credits
        FROM credits.usage_stats
        WHERE user_id = $1 AND date >= $2
        GROUP BY 1, 2
        ORDER BY 1, 2
        """,
        user_id,
        since,
        tz,
    )
