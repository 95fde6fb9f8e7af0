"""Subscription SQL. Writes lock the row first (user actions) or claim due rows with
`FOR UPDATE SKIP LOCKED` (renewals), so replicas and overlapping runs never act on the same row."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from mana_credits.db.pool import Conn
from mana_credits.kit.records import from_record
from mana_credits.sync_billing.periods import PRICES, SyncInterval

# The idempotency scope that makes each renewal period chargeable once, whatever runs it.
RENEWAL_SCOPE = "sync-renewal"

_COLUMNS = """
user_id, active, billing_interval, amount_charged, activated_at, next_charge_at,
COALESCE(current_period_end, next_charge_at) AS current_period_end, paused_at, is_gifted, gifted_by,
gifted_at, cancel_at_period_end, anchor_day, email, failure_count, retry_at
"""


class Subscription(msgspec.Struct, kw_only=True):
    user_id: str
    active: bool
    interval: SyncInterval
    amount_charged: int
    activated_at: datetime | None
    next_charge_at: datetime | None
    current_period_end: datetime | None
    paused_at: datetime | None
    is_gifted: bool
    gifted_by: str | None
    gifted_at: datetime | None
    cancel_at_period_end: bool
    anchor_day: int | None
    email: str | None
    failure_count: int
    retry_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Subscription:
        return from_record(cls, row, interval=SyncInterval(row["billing_interval"]))

    def in_paid_period(self, now: datetime) -> bool:
        """Paid and usable now: active, and a cancellation has not reached its period end yet."""
        if not self.active or self.next_charge_at is None:
            return False  # never paid for (a revoked gift): nothing to be inside of
        end = self.current_period_end
        return not self.cancel_at_period_end or (end is not None and end > now)


async def get(conn: Conn, user_id: str) -> Subscription | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM credits.sync_subscriptions WHERE user_id = $1", user_id
    )
    return None if row is None else Subscription.from_row(row)


async def lock(conn: Conn, user_id: str, *, create: bool) -> Subscription | None:
    """The user's row, locked until the transaction ends; with `create` an inactive row is made first,
    so two concurrent first activations queue on the same row instead of both charging."""
    if create:
        await conn.execute(
            "INSERT INTO credits.sync_subscriptions (user_id) VALUES ($1) ON CONFLICT (user_id) DO NOTHING",
            user_id,
        )
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM credits.sync_subscriptions WHERE user_id = $1 FOR UPDATE", user_id
    )
    return None if row is None else Subscription.from_row(row)


async def start_period(
    conn: Conn,
    user_id: str,
    *,
    interval: SyncInterval,
    now: datetime,
    period_end: datetime,
    anchor_day: int,
    email: str | None,
) -> Subscription:
    row = await conn.fetchrow(
        f"""
        UPDATE credits.sync_subscriptions
        SET active = true, billing_interval = $2::public.sync_billing_interval, amount_charged = $3,
            activated_at = $4, next_charge_at = $5, current_period_end = $5, anchor_day = $6,
            paused_at = NULL, cancel_at_period_end = false, failure_count = 0, retry_at = NULL,
            email = COALESCE($7, email), updated_at = now()
        WHERE user_id = $1
        RETURNING {_COLUMNS}
        """,
        user_id, interval.value, PRICES[interval], now, period_end, anchor_day, email,
    )  # fmt: skip
    assert row is not None
    return Subscription.from_row(row)


async def set_cancelled(conn: Conn, user_id: str, cancelled: bool, email: str | None = None) -> Subscription:
    row = await conn.fetchrow(
        f"""
        UPDATE credits.sync_subscriptions
        SET cancel_at_period_end = $2, email = COALESCE($3, email), updated_at = now()
        WHERE user_id = $1
        RETURNING {_COLUMNS}
        """,
        user_id,
        cancelled,
        email,
    )
    assert row is not None
    return Subscription.from_row(row)


async def set_interval(conn: Conn, user_id: str, interval: SyncInterval) -> Subscription:
    """The next renewal's interval; `amount_charged` keeps what the current period cost."""
    row = await conn.fetchrow(
        f"""
        UPDATE credits.sync_subscriptions
        SET billing_interval = $2::public.sync_billing_interval, updated_at = now()
        WHERE user_id = $1
        RETURNING {_COLUMNS}
        """,
        user_id,
        interval.value,
    )
    assert row is not None
    return Subscription.from_row(row)


async def gift(conn: Conn, user_id: str, *, admin_id: str, now: datetime) -> Subscription:
    """Mark sync as gifted. A paid subscription underneath is kept as it is, but never renewed while
    gifted (renewals skip gifted rows)."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO credits.sync_subscriptions AS s (user_id, is_gifted, gifted_by, gifted_at)
        VALUES ($1, true, $2, $3)
        ON CONFLICT (user_id) DO UPDATE
        SET is_gifted = true, gifted_by = EXCLUDED.gifted_by, gifted_at = EXCLUDED.gifted_at,
            updated_at = now()
        RETURNING {_COLUMNS}
        """,
        user_id,
        admin_id,
        now,
    )
    assert row is not None
    return Subscription.from_row(row)


async def revoke_gift(conn: Conn, user_id: str, now: datetime) -> Subscription | None:
    """End a gift. A paid subscription underneath goes on; one whose paid period ran out during the gift
    is due now, for a period from now (the gifted days are never charged); without one, sync is off."""
    row = await conn.fetchrow(
        f"""
        UPDATE credits.sync_subscriptions
        SET is_gifted = false, gifted_by = NULL, gifted_at = NULL, updated_at = now(),
            active = active AND next_charge_at IS NOT NULL,
            next_charge_at = CASE WHEN next_charge_at < $2 THEN $2 ELSE next_charge_at END,
            current_period_end = CASE WHEN next_charge_at < $2 THEN $2 ELSE current_period_end END,
            anchor_day = CASE WHEN next_charge_at < $2
                              THEN EXTRACT(DAY FROM $2 AT TIME ZONE 'UTC')::smallint ELSE anchor_day END
        WHERE user_id = $1 AND is_gifted
        RETURNING {_COLUMNS}
        """,
        user_id,
        now,
    )
    return None if row is None else Subscription.from_row(row)


# ---- renewals ----

_DUE = """
active AND NOT is_gifted AND next_charge_at <= $1 AND (retry_at IS NULL OR retry_at <= $1)
"""


async def count_due(conn: Conn, now: datetime) -> int:
    return int(await conn.fetchval(f"SELECT count(*) FROM credits.sync_subscriptions WHERE {_DUE}", now))


async def claim_due(conn: Conn, now: datetime, limit: int) -> list[Subscription]:
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM credits.sync_subscriptions
        WHERE {_DUE}
        ORDER BY next_charge_at
        LIMIT $2
        FOR UPDATE SKIP LOCKED
        """,
        now,
        limit,
    )
    return [Subscription.from_row(row) for row in rows]


async def claim_period_keys(conn: Conn, keys: list[str]) -> set[str]:
    """Insert one idempotency key per (user, period); returns the keys that were not taken before."""
    if not keys:
        return set()
    rows = await conn.fetch(
        """
        INSERT INTO credits.idempotency_keys (scope, key, request_hash, response_status)
        SELECT $1, k, 'renewal', 200 FROM unnest($2::text[]) AS k
        ON CONFLICT (scope, key) DO NOTHING
        RETURNING key
        """,
        RENEWAL_SCOPE,
        keys,
    )
    return {row["key"] for row in rows}


async def release_period_keys(conn: Conn, keys: list[str]) -> None:
    """Give back the keys of periods that were not charged after all (too few credits)."""
    if keys:
        await conn.execute(
            "DELETE FROM credits.idempotency_keys WHERE scope = $1 AND key = ANY($2::text[])",
            RENEWAL_SCOPE,
            keys,
        )


async def renew_many(
    conn: Conn, user_ids: list[str], period_ends: list[datetime], anchor_days: list[int], amounts: list[int]
) -> None:
    if not user_ids:
        return
    await conn.execute(
        """
        UPDATE credits.sync_subscriptions s
        SET next_charge_at = u.period_end, current_period_end = u.period_end, anchor_day = u.anchor_day,
            amount_charged = u.amount, failure_count = 0, retry_at = NULL, updated_at = now()
        FROM unnest($1::text[], $2::timestamptz[], $3::smallint[], $4::int[])
             AS u(user_id, period_end, anchor_day, amount)
        WHERE s.user_id = u.user_id
        """,
        user_ids,
        period_ends,
        anchor_days,
        amounts,
    )


async def pause_many(conn: Conn, user_ids: list[str], now: datetime) -> None:
    if user_ids:
        await conn.execute(
            """
            UPDATE credits.sync_subscriptions
            SET active = false, paused_at = $2, next_charge_at = NULL, cancel_at_period_end = false,
                failure_count = 0, retry_at = NULL, updated_at = now()
            WHERE user_id = ANY($1::text[])
            """,
            user_ids,
            now,
        )


async def end_many(conn: Conn, user_ids: list[str]) -> None:
    """Cancelled subscriptions whose paid period is over: off, nothing charged."""
    if user_ids:
        await conn.execute(
            """
            UPDATE credits.sync_subscriptions
            SET active = false, next_charge_at = NULL, cancel_at_period_end = false,
                failure_count = 0, retry_at = NULL, updated_at = now()
            WHERE user_id = ANY($1::text[])
            """,
            user_ids,
        )


async def record_failure(conn: Conn, user_id: str, retry_at: datetime) -> None:
    await conn.execute(
        "UPDATE credits.sync_subscriptions SET failure_count = failure_count + 1, retry_at = $2, "
        "updated_at = now() WHERE user_id = $1",
        user_id,
        retry_at,
    )
