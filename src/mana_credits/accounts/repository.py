"""Erasure SQL outside the ledger: holds, gifts, sync, Stripe customer, outbox, idempotency answers.

Each function returns how many rows it changed, so a repeated erasure reports 0 and changes nothing.
"""

from __future__ import annotations

from mana_credits.db.pool import Conn, rows_changed


async def lock_account(conn: Conn, user_id: str) -> None:
    """Nothing of the account commits around its erasure, and nothing after it keeps text: lock its open
    holds, its gifts, its subscription, its usage accruals, then its balance row (the order every other
    writer takes them in, so no deadlock), and leave the tombstone the insert triggers read (migration
    0012). Accruals hold amounts only: they stay, like the ledger's amounts."""
    await conn.execute(
        "SELECT 1 FROM credits.reservations WHERE user_id = $1 AND status = 'reserved' FOR UPDATE", user_id
    )
    await conn.execute("SELECT 1 FROM gifts.gift_codes WHERE creator_id = $1 FOR UPDATE", user_id)
    await conn.execute("SELECT 1 FROM credits.sync_subscriptions WHERE user_id = $1 FOR UPDATE", user_id)
    await conn.execute(
        "SELECT 1 FROM credits.usage_accruals WHERE user_id = $1 ORDER BY app_id FOR UPDATE", user_id
    )
    await conn.execute("SELECT 1 FROM credits.balances WHERE user_id = $1 FOR UPDATE", user_id)
    await conn.execute(
        "INSERT INTO credits.erased_accounts (user_id) VALUES ($1) ON CONFLICT DO NOTHING", user_id
    )


async def open_holds(conn: Conn, user_id: str) -> int:
    """Release every open hold of the user (claimed here; the caller gives the credits back)."""
    held = await conn.fetchval(
        """
        WITH released AS (
          UPDATE credits.reservations SET status = 'refunded', resolved_at = now(), committed_amount = 0
          WHERE user_id = $1 AND status = 'reserved'
          RETURNING amount
        )
        SELECT COALESCE(sum(amount), 0) FROM released
        """,
        user_id,
    )
    return int(held)


async def stop_sync(conn: Conn, user_id: str) -> int:
    """No further charges, no access, no remembered address; the row stays for the bookkeeping."""
    return rows_changed(
        await conn.execute(
            """
            UPDATE credits.sync_subscriptions
            SET active = false, next_charge_at = NULL, cancel_at_period_end = false, is_gifted = false,
                paused_at = NULL, retry_at = NULL, email = NULL, gifted_by = NULL,
                current_period_end = LEAST(current_period_end, now()), updated_at = now()
            WHERE user_id = $1
              AND (active OR is_gifted OR email IS NOT NULL OR next_charge_at IS NOT NULL
                   OR paused_at IS NOT NULL)
            """,
            user_id,
        )
    )


async def scrub_gifts(conn: Conn, user_id: str) -> int:
    """The user's name and messages leave their gifts; a gift not yet redeemed stays redeemable (the
    recipient was given it), and the redemptions forget the user's address."""
    changed = await conn.execute(
        """
        UPDATE gifts.gift_codes SET creator_name = NULL, message = NULL, updated_at = now()
        WHERE creator_id = $1 AND (creator_name IS NOT NULL OR message IS NOT NULL)
        """,
        user_id,
    )
    ips = await conn.execute(
        "UPDATE gifts.gift_redemptions SET client_ip = NULL "
        "WHERE redeemer_user_id = $1 AND client_ip IS NOT NULL",
        user_id,
    )
    return rows_changed(changed) + rows_changed(ips)


async def gift_transaction_ids(conn: Conn, user_id: str) -> list[str]:
    """Ledger rows of other users that may name this user as a gift's sender."""
    rows = await conn.fetch(
        """
        SELECT r.credit_transaction_id::text AS id FROM gifts.gift_redemptions r
        JOIN gifts.gift_codes g ON g.id = r.gift_code_id
        WHERE g.creator_id = $1 AND r.credit_transaction_id IS NOT NULL
        """,
        user_id,
    )
    return [row["id"] for row in rows]


async def scrub_payments_and_mail(conn: Conn, user_id: str) -> int:
    customer = await conn.execute(
        "UPDATE credits.stripe_customers SET email = NULL, updated_at = now() "
        "WHERE user_id = $1 AND email IS NOT NULL",
        user_id,
    )
    purchases = await conn.execute(
        "UPDATE credits.purchases SET metadata = NULL WHERE user_id = $1 AND metadata IS NOT NULL", user_id
    )
    # Mail not yet sent is not sent; sent mail keeps only its dedupe id.
    unsent = await conn.execute(
        "DELETE FROM credits.notification_outbox WHERE payload->>'userId' = $1 AND delivered_at IS NULL",
        user_id,
    )
    sent = await conn.execute(
        """
        UPDATE credits.notification_outbox SET payload = '{"erased": true}'::jsonb
        WHERE payload->>'userId' = $1 AND delivered_at IS NOT NULL
        """,
        user_id,
    )
    return sum(rows_changed(s) for s in (customer, purchases, unsent, sent))


async def scrub_holds(conn: Conn, user_id: str) -> int:
    """A hold's reason (free text) becomes its app; a hold of the old service without an app gets the
    reason's prefix as its app first (what it was booked to), or mana-research's when it has none."""
    return rows_changed(
        await conn.execute(
            """
            UPDATE credits.reservations
            SET app_id = credits.hold_app(app_id, reason), reason = credits.hold_app(app_id, reason)
            WHERE user_id = $1 AND reason IS DISTINCT FROM credits.hold_app(app_id, reason)
            """,
            user_id,
        )
    )


async def scrub_answers(conn: Conn, user_id: str) -> int:
    """Stored answers for replays, after the ledger was erased. The user's own ones go (nobody signs in
    as them again); grant references stay (exactly once). Answers to a service about the user stay
    replayable, so a retried debit still charges once, but their ledger row is the erased one now."""
    own = await conn.execute(
        "DELETE FROM credits.idempotency_keys WHERE scope = ANY($1::text[])",
        [f"user:{user_id}", f"legacy:{user_id}"],
    )
    services = await conn.execute(
        """
        UPDATE credits.idempotency_keys k
        SET response_body = jsonb_set(
          k.response_body, '{transaction}',
          k.response_body->'transaction'
            || jsonb_build_object('description', t.description, 'metadata', t.metadata))
        FROM credits.transactions t
        WHERE k.user_id = $1 AND jsonb_typeof(k.response_body->'transaction') = 'object'
          AND t.id::text = k.response_body->'transaction'->>'id' AND t.user_id = $1
          AND (k.response_body->'transaction'->'description', k.response_body->'transaction'->'metadata')
              IS DISTINCT FROM (to_jsonb(t.description), COALESCE(t.metadata, 'null'::jsonb))
        """,
        user_id,
    )
    return rows_changed(own) + rows_changed(services)
