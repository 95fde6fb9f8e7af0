"""Read-only SQL for the support commands (grants go through the ledger, in credits.service)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from mana_credits.db.pool import Conn
from mana_credits.kit.records import from_record
from mana_credits.ledger.schemas import BalanceRow
from mana_credits.notifications.service import PARKED
from mana_credits.sync_billing import repository as sync_repository
from mana_credits.sync_billing.repository import Subscription

EXPORT_COLUMNS = (
    "id", "created_at", "user_id", "type", "status", "amount", "balance_before", "balance_after",
    "app_id", "description", "idempotency_key",
)  # fmt: skip
_EXPORT_WHERE = "WHERE created_at >= $1 AND ($2::text IS NULL OR user_id = $2)"


# What `user show` lists of one user; the fields in the order of the columns shown.


class RecentTransaction(msgspec.Struct, frozen=True, kw_only=True):
    created_at: datetime
    type: str
    amount: int
    balance_after: int
    app_id: str
    description: str


class OpenHold(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    amount: int
    app_id: str | None
    reason: str
    expires_at: datetime


class CreatedGift(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    total_credits: int
    redeemed: int
    status: str
    expires_at: datetime | None


class ReceivedGift(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    credits_received: int
    status: str
    created_at: datetime


class UserOverview(msgspec.Struct, frozen=True, kw_only=True):
    balance: BalanceRow | None
    transactions: list[RecentTransaction]
    holds: list[OpenHold]
    sync: Subscription | None
    gifts_created: list[CreatedGift]
    gifts_received: list[ReceivedGift]


async def user_overview(conn: Conn, user_id: str, *, last: int = 10) -> UserOverview:
    """Everything support asks about first, in one snapshot."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        balance = await conn.fetchrow("SELECT * FROM credits.balances WHERE user_id = $1", user_id)
        rows = await conn.fetch(
            "SELECT created_at, type, amount, balance_after, app_id, description FROM credits.transactions "
            "WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
            user_id,
            last,
        )
        holds = await conn.fetch(
            "SELECT id, amount, app_id, reason, expires_at FROM credits.reservations "
            "WHERE user_id = $1 AND status = 'reserved' ORDER BY expires_at",
            user_id,
        )
        sync = await sync_repository.get(conn, user_id)
        created = await conn.fetch(
            "SELECT code, total_credits, redeemed, status, expires_at FROM gifts.gift_codes "
            "WHERE creator_id = $1 ORDER BY created_at DESC LIMIT $2",
            user_id,
            last,
        )
        received = await conn.fetch(
            "SELECT g.code, r.credits_received, r.status, r.created_at FROM gifts.gift_redemptions r "
            "JOIN gifts.gift_codes g ON g.id = r.gift_code_id WHERE r.redeemer_user_id = $1 "
            "ORDER BY r.created_at DESC LIMIT $2",
            user_id,
            last,
        )
    return UserOverview(
        balance=BalanceRow.from_record(balance) if balance else None,
        transactions=[from_record(RecentTransaction, row) for row in rows],
        holds=[from_record(OpenHold, row) for row in holds],
        sync=sync,
        gifts_created=[from_record(CreatedGift, row) for row in created],
        gifts_received=[from_record(ReceivedGift, row) for row in received],
    )


async def count_export(conn: Conn, since: datetime, user_id: str | None) -> int:
    return int(
        await conn.fetchval(f"SELECT count(*) FROM credits.transactions {_EXPORT_WHERE}", since, user_id)
    )


async def export_rows(
    conn: Conn, since: datetime, user_id: str | None, *, prefetch: int = 1000
) -> AsyncIterator[tuple[Any, ...]]:
    """The ledger in time order through a server-side cursor: memory stays flat at any size."""
    query = (
        f"SELECT {', '.join(EXPORT_COLUMNS)} FROM credits.transactions {_EXPORT_WHERE} "
        "ORDER BY created_at, id"
    )
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        async for row in conn.cursor(query, since, user_id, prefetch=prefetch):
            yield tuple(row.values())


async def open_questions(conn: Conn, now: datetime) -> list[tuple[str, str]]:
    """Beside ledger mismatches, what a person must decide: (subject, what to decide)."""
    found: list[tuple[str, str]] = []
    for row in await conn.fetch(
        "SELECT payment_intent_id, amount_refunded, amount_disputed FROM credits.stripe_unmatched_returns"
    ):
        found.append((
            f"payment {row['payment_intent_id']}",
            f"Stripe returned {row['amount_refunded']} refunded / {row['amount_disputed']} disputed cents "
            "for a payment with no purchase here: find the user in Stripe, then grant or take back by hand",
        ))  # fmt: skip
    parked = await conn.fetch(
        "SELECT external_id, attempts, last_error FROM credits.notification_outbox "
        "WHERE delivered_at IS NULL AND next_attempt_at = $1",
        PARKED,
    )
    for row in parked:
        found.append((
            f"email {row['external_id']}",
            f"parked after {row['attempts']} failed tries ({row['last_error']}): resend it (set "
            "next_attempt_at = now()) or delete it",
        ))  # fmt: skip
    stale = await conn.fetchval(
        "SELECT count(*) FROM credits.reservations "
        "WHERE status = 'reserved' AND expires_at < $1::timestamptz - interval '1 hour'",
        now,
    )
    if stale:
        found.append(
            ("holds", f"{stale} hold(s) expired over an hour ago are still open: is a scheduler on?")
        )
    return found
