"""Gift SQL. Every state change is a conditional UPDATE … RETURNING: whoever gets the row acts, the rest
see nothing. Expiry is compared with the time the caller passes (the injected clock).
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from mana_credits.db.pool import Conn
from mana_credits.gifts.schemas import GiftRow, Redemption
from mana_credits.kit.records import from_record

# A gift with no expiry (legacy rows) never expires.
_NOT_EXPIRED = "(expires_at IS NULL OR expires_at > $2)"

# E-mails compare ASCII-case-folded, as codes.fold_email does: never the database's locale-dependent lower()
# (under some locales it maps a look-alike `İ` to `i`).
_UPPER, _LOWER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"
_TARGET_FOLDED = f"translate(target_email, '{_UPPER}', '{_LOWER}')"


async def insert_gift(
    conn: Conn,
    *,
    gift_id: UUID,
    code: str,
    short_url: str,
    creator_id: str,
    creator_name: str | None,
    total_credits: int,
    type: str,
    target_email: str | None,
    message: str | None,
    expires_at: datetime,
    transaction_id: UUID,
) -> GiftRow | None:
    """The new gift, or None when the code is taken (the caller draws another)."""
    row = await conn.fetchrow(
        """
        INSERT INTO gifts.gift_codes
          (id, code, short_url, creator_id, creator_name, total_credits, type, target_email, message,
           expires_at, reservation_transaction_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7::public.gift_code_type, $8, $9, $10, $11)
        ON CONFLICT (code) DO NOTHING
        RETURNING *
        """,
        gift_id,
        code,
        short_url,
        creator_id,
        creator_name,
        total_credits,
        type,
        target_email,
        message,
        expires_at,
        transaction_id,
    )
    return from_record(GiftRow, row) if row else None


async def get_by_code(conn: Conn, code: str) -> GiftRow | None:
    row = await conn.fetchrow("SELECT * FROM gifts.gift_codes WHERE code = $1", code)
    return from_record(GiftRow, row) if row else None


async def get_by_id(conn: Conn, gift_id: UUID) -> GiftRow | None:
    row = await conn.fetchrow("SELECT * FROM gifts.gift_codes WHERE id = $1", gift_id)
    return from_record(GiftRow, row) if row else None


async def claim_for_redeem(
    conn: Conn, code: str, now: datetime, user_id: str, email: str | None
) -> GiftRow | None:
    """Take the gift for this user if it is active, unexpired, not theirs and (if personalized) theirs;
    `email` is the user's verified address, folded (codes.fold_email)."""
    row = await conn.fetchrow(
        f"""
        UPDATE gifts.gift_codes
        SET status = 'depleted', redeemed = 1, updated_at = now()
        WHERE code = $1 AND status = 'active' AND {_NOT_EXPIRED} AND creator_id <> $3
          AND (type = 'simple' OR {_TARGET_FOLDED} = $4)
        RETURNING *
        """,
        code,
        now,
        user_id,
        email,
    )
    return from_record(GiftRow, row) if row else None


async def claim_pending(conn: Conn, email: str, now: datetime, user_id: str) -> list[GiftRow]:
    """Take every redeemable personalized gift for this (folded) email. Rows are locked in id order; a
    concurrent call waits on them, then re-checks `status = 'active'` and skips what this one took.
    """
    rows = await conn.fetch(
        f"""
        WITH mine AS (
          SELECT id FROM gifts.gift_codes
          WHERE {_TARGET_FOLDED} = $1 AND status = 'active' AND type = 'personalized'
            AND {_NOT_EXPIRED} AND creator_id <> $3
          ORDER BY id
          FOR UPDATE
        )
        UPDATE gifts.gift_codes g
        SET status = 'depleted', redeemed = 1, updated_at = now()
        FROM mine WHERE g.id = mine.id
        RETURNING g.*
        """,
        email,
        now,
        user_id,
    )
    return [from_record(GiftRow, row) for row in rows]


async def claim_cancel(conn: Conn, gift_id: UUID, creator_id: str, now: datetime) -> GiftRow | None:
    """An expired gift is not cancellable, even before the sweep marks it: the sweep refunds it."""
    row = await conn.fetchrow(
        """
        UPDATE gifts.gift_codes SET status = 'cancelled', updated_at = now()
        WHERE id = $1 AND creator_id = $2 AND status = 'active' AND (expires_at IS NULL OR expires_at > $3)
        RETURNING *
        """,
        gift_id,
        creator_id,
        now,
    )
    return from_record(GiftRow, row) if row else None


async def lock_expired(conn: Conn, now: datetime, limit: int) -> list[GiftRow]:
    """Lock up to `limit` expired active gifts, oldest first; rows another sweep holds are skipped."""
    rows = await conn.fetch(
        """
        SELECT * FROM gifts.gift_codes
        WHERE status = 'active' AND expires_at <= $1
        ORDER BY expires_at
        LIMIT $2
        FOR UPDATE SKIP LOCKED
        """,
        now,
        limit,
    )
    return [from_record(GiftRow, row) for row in rows]


async def mark_expired(conn: Conn, gift_id: UUID) -> None:
    await conn.execute(
        "UPDATE gifts.gift_codes SET status = 'expired', updated_at = now() WHERE id = $1", gift_id
    )


async def count_expired_due(conn: Conn, now: datetime) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM gifts.gift_codes WHERE status = 'active' AND expires_at <= $1", now
        )
    )


async def insert_redemption(
    conn: Conn,
    *,
    gift_id: UUID,
    user_id: str,
    status: str,
    credits: int = 0,
    transaction_id: UUID | None = None,
    source_app_id: str | None = None,
    client_ip: str | None = None,
) -> None:
    await conn.execute(
        """
        INSERT INTO gifts.gift_redemptions
          (gift_code_id, redeemer_user_id, status, credits_received, credit_transaction_id, source_app_id,
           client_ip)
        VALUES ($1, $2, $3::public.gift_redemption_status, $4, $5, $6, $7)
        """,
        gift_id,
        user_id,
        status,
        credits,
        transaction_id,
        source_app_id,
        client_ip,
    )


async def has_redeemed(conn: Conn, gift_id: UUID, user_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM gifts.gift_redemptions "
            "WHERE gift_code_id = $1 AND redeemer_user_id = $2 AND status = 'success')",
            gift_id,
            user_id,
        )
    )


async def list_created(conn: Conn, creator_id: str) -> list[GiftRow]:
    rows = await conn.fetch(
        "SELECT * FROM gifts.gift_codes WHERE creator_id = $1 ORDER BY created_at DESC, id DESC", creator_id
    )
    return [from_record(GiftRow, row) for row in rows]


async def list_received(conn: Conn, user_id: str) -> list[Redemption]:
    rows = await conn.fetch(
        """
        SELECT r.id, r.gift_code_id, g.code, r.credits_received, g.creator_name, g.message, r.status,
               r.source_app_id, r.credit_transaction_id, r.created_at
        FROM gifts.gift_redemptions r JOIN gifts.gift_codes g ON g.id = r.gift_code_id
        WHERE r.redeemer_user_id = $1 AND r.status = 'success'
        ORDER BY r.created_at DESC, r.id DESC
        """,
        user_id,
    )
    return [Redemption.from_row(row) for row in rows]


# Guess and write attempts (gifts.guess_attempts), counted by `ratelimit`.


async def record_attempts(conn: Conn, subjects: list[str], at: datetime) -> list[int]:
    """One attempt per subject; the ids in the subjects' order (inserted in that order)."""
    rows = await conn.fetch(
        "INSERT INTO gifts.guess_attempts (subject, at) "
        "SELECT s, $2 FROM unnest($1::text[]) WITH ORDINALITY AS u(s, n) ORDER BY n RETURNING id",
        subjects,
        at,
    )
    return sorted(row["id"] for row in rows)


async def subjects_over(conn: Conn, subjects: list[str], since: datetime, limit: int) -> list[str]:
    """The subjects with more than `limit` attempts after `since`."""
    rows = await conn.fetch(
        "SELECT subject FROM gifts.guess_attempts WHERE subject = ANY($1) AND at > $2 "
        "GROUP BY subject HAVING count(*) > $3",
        subjects,
        since,
        limit,
    )
    return [row["subject"] for row in rows]


async def nth_newest_attempt(conn: Conn, subject: str, since: datetime, n: int) -> datetime | None:
    """When the subject's n-th newest attempt after `since` was made (n from 1), if it has that many."""
    at: datetime | None = await conn.fetchval(
        "SELECT at FROM gifts.guess_attempts WHERE subject = $1 AND at > $2 "
        "ORDER BY at DESC OFFSET $3 LIMIT 1",
        subject,
        since,
        n - 1,
    )
    return at


async def delete_attempts(conn: Conn, ids: list[int]) -> None:
    await conn.execute("DELETE FROM gifts.guess_attempts WHERE id = ANY($1)", ids)


async def delete_attempts_until(conn: Conn, until: datetime) -> int:
    status = await conn.execute("DELETE FROM gifts.guess_attempts WHERE at <= $1", until)
    return int(status.split()[-1])
