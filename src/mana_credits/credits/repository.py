"""Reads of the ledger for the history endpoints, and the refund bookkeeping for a usage row."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from mana_credits.credits.schemas import UsageDay
from mana_credits.db.pool import Conn
from mana_credits.kit.records import from_record
from mana_credits.ledger.schemas import Transaction


class ClaimedHold(msgspec.Struct, frozen=True, kw_only=True):
    """A hold claimed for commit: what it reserved and what is charged of it."""

    user_id: str
    amount: int
    reason: str
    app_id: str | None  # None on holds the old service wrote
    committed_amount: int


class ReleasedHold(msgspec.Struct, frozen=True, kw_only=True):
    """A hold claimed for release: its amount goes back to the balance."""

    id: UUID
    user_id: str
    amount: int


class HoldState(msgspec.Struct, frozen=True, kw_only=True):
    """What explains a failed claim."""

    status: str
    amount: int
    app_id: str | None
    released_by_expiry: bool
    transaction_id: UUID | None


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


async def lock_usage(conn: Conn, transaction_id: UUID, user_id: str) -> int | None:
    """Lock a usage row so concurrent refunds of it are serialized; its (negative) amount."""
    amount: int | None = await conn.fetchval(
        "SELECT amount FROM credits.transactions "
        "WHERE id = $1 AND user_id = $2 AND type = 'usage' AND status = 'completed' FOR UPDATE",
        transaction_id,
        user_id,
    )
    return amount


async def refunded_so_far(conn: Conn, transaction_id: UUID, user_id: str) -> int:
    total = await conn.fetchval(
        "SELECT COALESCE(SUM(amount), 0) FROM credits.transactions "
        "WHERE user_id = $1 AND type = 'refund' AND metadata->>'refundOf' = $2",
        user_id,
        str(transaction_id),
    )
    return int(total)


async def usage_per_day(conn: Conn, user_id: str, *, since: datetime, tz: str) -> list[UsageDay]:
    """Credits used per local day (in `tz`) and app since `since`: the rows of `usage_stats`."""
    rows = await conn.fetch(
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
    return [UsageDay(date=row["day"], app_id=row["app_id"], credits=row["credits"]) for row in rows]


# Reservations (holds): every state change claims the row with a conditional UPDATE … RETURNING.


async def insert_reservation(
    conn: Conn, *, user_id: str, amount: int, reason: str, app_id: str, expires_at: datetime, now: datetime
) -> UUID:
    reservation_id: UUID = await conn.fetchval(
        "INSERT INTO credits.reservations (user_id, amount, reason, app_id, expires_at, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        user_id,
        amount,
        reason,
        app_id,
        expires_at,
        now,
    )
    return reservation_id


# Claims a hold for commit: still reserved (expired or not) and covering the amount.
_CLAIM_COMMIT = """
UPDATE credits.reservations
SET status = $2::public.reservation_status, resolved_at = $3, committed_amount = COALESCE($4, amount)
WHERE id = $1 AND status = 'reserved' AND amount >= COALESCE($4, 0)
  AND ($5::text IS NULL OR app_id = $5)
RETURNING user_id, amount, reason, app_id, committed_amount
"""

# Claims a hold the expiry sweep released, for a late commit: charged once, from the balance.
_CLAIM_LATE_COMMIT = """
UPDATE credits.reservations
SET status = 'committed', resolved_at = $2, committed_amount = COALESCE($3, amount)
WHERE id = $1 AND status = 'refunded' AND released_by_expiry AND transaction_id IS NULL
  AND amount >= COALESCE($3, 0) AND ($4::text IS NULL OR app_id = $4)
RETURNING user_id, amount, reason, app_id, committed_amount
"""

_CLAIM_RELEASE = """
UPDATE credits.reservations
SET status = 'refunded', resolved_at = $2, committed_amount = 0
WHERE id = $1 AND status = 'reserved' AND ($3::text IS NULL OR app_id = $3)
RETURNING id, user_id, amount
"""


async def claim_for_commit(
    conn: Conn, reservation_id: UUID, status: str, now: datetime, amount: int | None, owner: str | None
) -> ClaimedHold | None:
    row = await conn.fetchrow(_CLAIM_COMMIT, reservation_id, status, now, amount, owner)
    return from_record(ClaimedHold, row) if row else None


async def claim_for_late_commit(
    conn: Conn, reservation_id: UUID, now: datetime, amount: int | None, owner: str | None
) -> ClaimedHold | None:
    row = await conn.fetchrow(_CLAIM_LATE_COMMIT, reservation_id, now, amount, owner)
    return from_record(ClaimedHold, row) if row else None


async def claim_for_release(
    conn: Conn, reservation_id: UUID, now: datetime, owner: str | None
) -> ReleasedHold | None:
    row = await conn.fetchrow(_CLAIM_RELEASE, reservation_id, now, owner)
    return from_record(ReleasedHold, row) if row else None


async def link_transaction(conn: Conn, reservation_id: UUID, transaction_id: UUID) -> None:
    await conn.execute(
        "UPDATE credits.reservations SET transaction_id = $2 WHERE id = $1", reservation_id, transaction_id
    )


async def reservation(conn: Conn, reservation_id: UUID) -> HoldState | None:
    row = await conn.fetchrow(
        "SELECT status, amount, app_id, released_by_expiry, transaction_id FROM credits.reservations "
        "WHERE id = $1",
        reservation_id,
    )
    return from_record(HoldState, row) if row else None


async def put_back_reserved(conn: Conn, reservation_ids: list[UUID]) -> None:
    """Undo an expiry claim: the holds are reserved again, for the next sweep."""
    await conn.execute(
        "UPDATE credits.reservations SET status = 'reserved', resolved_at = NULL, "
        "committed_amount = NULL, released_by_expiry = false WHERE id = ANY($1::uuid[])",
        reservation_ids,
    )


async def claim_expired(conn: Conn, now: datetime, batch: int) -> list[ReleasedHold]:
    """Claim up to `batch` expired holds as released by expiry (skipping rows another sweeper holds)."""
    rows = await conn.fetch(
        """
        WITH due AS (
          SELECT id FROM credits.reservations
          WHERE status = 'reserved' AND expires_at <= $1
          ORDER BY expires_at
          LIMIT $2
          FOR UPDATE SKIP LOCKED
        )
        UPDATE credits.reservations r
        SET status = 'refunded', resolved_at = $1, committed_amount = 0, released_by_expiry = true
        FROM due WHERE r.id = due.id
        RETURNING r.id, r.user_id, r.amount
        """,
        now,
        batch,
    )
    return [from_record(ReleasedHold, row) for row in rows]
