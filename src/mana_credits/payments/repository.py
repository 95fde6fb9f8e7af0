"""SQL for packages, Stripe customers, purchases and processed Stripe events."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from mana_credits.db import locks
from mana_credits.db.pool import Conn, rows_changed
from mana_credits.kit.records import from_record
from mana_credits.payments.schemas import Package, Purchase, PurchaseReturns

# The default set shipped with the service (the old one's); operators edit packages as data afterwards.
DEFAULT_PACKAGES = [
    ("Starter", "100 credits", 100, 100, 1),
    ("Basic", "500 credits", 500, 500, 2),
    ("Plus", "1,000 credits — 10 % off", 1000, 900, 3),
    ("Pro", "2,500 credits — 20 % off", 2500, 2000, 4),
]

# ---- packages ----


async def active_packages(conn: Conn) -> list[Package]:
    rows = await conn.fetch(
        "SELECT * FROM credits.packages WHERE active ORDER BY sort_order, price_euro_cents"
    )
    return [Package.from_row(row) for row in rows]


async def all_packages(conn: Conn) -> list[Package]:
    rows = await conn.fetch("SELECT * FROM credits.packages ORDER BY active DESC, sort_order, name")
    return [Package.from_row(row) for row in rows]


async def active_package(conn: Conn, package_id: UUID) -> Package | None:
    row = await conn.fetchrow("SELECT * FROM credits.packages WHERE id = $1 AND active", package_id)
    return Package.from_row(row) if row else None


async def add_package(
    conn: Conn, *, name: str, credits: int, price_euro_cents: int, description: str | None, sort_order: int
) -> Package | None:
    """Insert a package; None when the name is taken."""
    row = await conn.fetchrow(
        """
        INSERT INTO credits.packages (name, description, credits, price_euro_cents, sort_order)
        VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING RETURNING *
        """,
        name,
        description,
        credits,
        price_euro_cents,
        sort_order,
    )
    return Package.from_row(row) if row else None


async def deactivate_package(conn: Conn, name_or_id: str) -> Package | None:
    """Deactivate by name or id; purchases keep their snapshot of price and credits."""
    row = await conn.fetchrow(
        """
        UPDATE credits.packages SET active = false, updated_at = now()
        WHERE name = $1 OR id::text = $1 RETURNING *
        """,
        name_or_id,
    )
    return Package.from_row(row) if row else None


async def seed_default_packages(conn: Conn) -> int:
    """Insert the default packages that do not exist yet (by name); returns how many were added."""
    added = 0
    for name, description, credits, price, order in DEFAULT_PACKAGES:
        status = await conn.execute(
            """
            INSERT INTO credits.packages (name, description, credits, price_euro_cents, sort_order)
            VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING
            """,
            name,
            description,
            credits,
            price,
            order,
        )
        added += rows_changed(status)
    return added


# ---- Stripe customers ----


async def lock_customer(conn: Conn, user_id: str) -> str | None:
    """Serialize get-or-create per user (released at commit), then read the stored customer."""
    await locks.xact_lock(conn, "stripe_customer", user_id)
    customer: str | None = await conn.fetchval(
        "SELECT stripe_customer_id FROM credits.stripe_customers WHERE user_id = $1", user_id
    )
    return customer


async def save_customer(conn: Conn, user_id: str, customer_id: str, email: str | None) -> None:
    await conn.execute(
        """
        INSERT INTO credits.stripe_customers (user_id, stripe_customer_id, email)
        VALUES ($1, $2, $3) ON CONFLICT (user_id) DO NOTHING
        """,
        user_id,
        customer_id,
        email,
    )


# ---- purchases ----


async def user_purchases(conn: Conn, user_id: str) -> list[Purchase]:
    rows = await conn.fetch(
        "SELECT * FROM credits.purchases WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT 500",
        user_id,
    )
    return [Purchase.from_row(row) for row in rows]


async def user_purchase(conn: Conn, user_id: str, purchase_id: UUID) -> Purchase | None:
    row = await conn.fetchrow(
        "SELECT * FROM credits.purchases WHERE id = $1 AND user_id = $2", purchase_id, user_id
    )
    return Purchase.from_row(row) if row else None


async def insert_purchase(conn: Conn, user_id: str, package: Package, customer_id: str) -> Purchase:
    """A pending purchase with the package's price and credits snapshotted."""
    row = await conn.fetchrow(
        """
        INSERT INTO credits.purchases
          (user_id, package_id, credits, price_euro_cents, stripe_customer_id, metadata)
        VALUES ($1, $2, $3, $4, $5, $6) RETURNING *
        """,
        user_id,
        package.id,
        package.credits,
        package.price_euro_cents,
        customer_id,
        {"packageName": package.name},
    )
    assert row is not None
    return Purchase.from_row(row)


async def attach_payment(
    conn: Conn, purchase_id: UUID, payment_intent_id: str | None, checkout_session_id: str | None
) -> Purchase:
    row = await conn.fetchrow(
        """
        UPDATE credits.purchases SET stripe_payment_intent_id = $2, stripe_checkout_session_id = $3
        WHERE id = $1 RETURNING *
        """,
        purchase_id,
        payment_intent_id,
        checkout_session_id,
    )
    assert row is not None
    return Purchase.from_row(row)


async def find_purchase(
    conn: Conn,
    *,
    payment_intent_id: str | None = None,
    checkout_session_id: str | None = None,
    purchase_id: UUID | None = None,
) -> Purchase | None:
    """By the Stripe object's id first, else by the purchase id from its metadata."""
    row = None
    if payment_intent_id:
        row = await conn.fetchrow(
            "SELECT * FROM credits.purchases WHERE stripe_payment_intent_id = $1", payment_intent_id
        )
    if row is None and checkout_session_id:
        row = await conn.fetchrow(
            "SELECT * FROM credits.purchases WHERE stripe_checkout_session_id = $1", checkout_session_id
        )
    if row is None and purchase_id:
        row = await conn.fetchrow("SELECT * FROM credits.purchases WHERE id = $1", purchase_id)
    return Purchase.from_row(row) if row else None


async def claim_for_credit(
    conn: Conn, purchase_id: UUID, paid: int, payment_intent_id: str | None
) -> Purchase | None:
    """Mark the purchase completed if it is not yet and the amount paid is its price; None otherwise.

    A failed purchase may still complete: Stripe lets the payer retry a declined PaymentIntent with
    another card, and money received must be credited. `completed` is final, so this runs once.
    """
    row = await conn.fetchrow(
        """
        UPDATE credits.purchases
        SET status = 'completed', completed_at = now(),
            stripe_payment_intent_id = COALESCE(stripe_payment_intent_id, $3)
        WHERE id = $1 AND status IN ('pending', 'failed') AND price_euro_cents = $2
        RETURNING *
        """,
        purchase_id,
        paid,
        payment_intent_id,
    )
    return Purchase.from_row(row) if row else None


async def mark_failed(conn: Conn, purchase_id: UUID) -> bool:
    """Fail a pending purchase; a completed one never goes back."""
    status = await conn.execute(
        "UPDATE credits.purchases SET status = 'failed' WHERE id = $1 AND status = 'pending'", purchase_id
    )
    return status.endswith(" 1")


# A dispute takes the money while it is a chargeback (not an inquiry: `warning_*`) and not won; a refund
# gives nothing back once it failed or was cancelled.
DISPUTE_TAKES = ["needs_response", "under_review", "lost"]
REFUND_UNDONE = ["failed", "canceled"]
# Later stages outrank earlier ones: a stale event never moves a dispute or refund back.
_STAGE = {
    "warning_needs_response": 1, "warning_under_review": 1, "needs_response": 2, "under_review": 2,
    "won": 3, "lost": 3, "warning_closed": 3, "prevented": 3,
    "pending": 1, "requires_action": 1, "succeeded": 2, "failed": 3, "canceled": 3,
}  # fmt: skip


def _stage(column: str) -> str:
    cases = " ".join(f"WHEN '{status}' THEN {stage}" for status, stage in _STAGE.items())
    return f"(CASE {column} {cases} ELSE 0 END)"


async def record_return(
    conn: Conn, *, return_id: str, kind: str, payment_intent_id: str, amount: int, status: str
) -> None:
    """Store a dispute's or refund's status unless what is stored is a later stage."""
    await conn.execute(
        f"""
        INSERT INTO credits.stripe_returns AS cur (id, kind, payment_intent_id, amount, status)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount, status = EXCLUDED.status, updated_at = now()
        WHERE {_stage("EXCLUDED.status")} >= {_stage("cur.status")}
        """,
        return_id,
        kind,
        payment_intent_id,
        amount,
        status,
    )


async def record_returned_money(conn: Conn, purchase_id: UUID, refunded: int) -> PurchaseReturns:
    """Raise the refunded total (never lower it), recount the disputed money from the disputes' states,
    and lock the row for the reversal. `refund_failed` is what failed refunds gave back."""
    row = await conn.fetchrow(
        """
        WITH r AS (
          SELECT
            COALESCE(SUM(r.amount) FILTER (WHERE r.kind = 'dispute' AND r.status = ANY($3)), 0) AS disputed,
            COALESCE(SUM(r.amount) FILTER (WHERE r.kind = 'refund' AND r.status = ANY($4)), 0) AS failed
          FROM credits.purchases p
          JOIN credits.stripe_returns r ON r.payment_intent_id = p.stripe_payment_intent_id
          WHERE p.id = $1
        )
        UPDATE credits.purchases
        SET amount_refunded = GREATEST(amount_refunded, $2), amount_disputed = r.disputed
        FROM r WHERE id = $1 RETURNING credits.purchases.*, r.failed AS refund_failed
        """,
        purchase_id,
        refunded,
        DISPUTE_TAKES,
        REFUND_UNDONE,
    )
    assert row is not None
    return from_record(PurchaseReturns, row)


async def lock_payment_intent(conn: Conn, payment_intent_id: str) -> None:
    """Serialize everything that matches money to one PaymentIntent (a payment and its refunds)."""
    await locks.xact_lock(conn, "payment_intent", payment_intent_id)


async def remember_unmatched_return(conn: Conn, payment_intent_id: str, refunded: int) -> None:
    """A refund announced before its PaymentIntent was matched to a purchase (disputes wait in
    stripe_returns, keyed by the PaymentIntent)."""
    await conn.execute(
        """
        INSERT INTO credits.stripe_unmatched_returns (payment_intent_id, amount_refunded) VALUES ($1, $2)
        ON CONFLICT (payment_intent_id) DO UPDATE
        SET amount_refunded = GREATEST(stripe_unmatched_returns.amount_refunded, EXCLUDED.amount_refunded),
            updated_at = now()
        """,
        payment_intent_id,
        refunded,
    )


async def take_unmatched_return(conn: Conn, payment_intent_id: str) -> int:
    """The refunded amount announced before the PaymentIntent was matched to a purchase; forgotten here."""
    refunded = await conn.fetchval(
        "DELETE FROM credits.stripe_unmatched_returns WHERE payment_intent_id = $1 RETURNING amount_refunded",
        payment_intent_id,
    )
    return int(refunded or 0)


async def set_credits_reversed(conn: Conn, purchase_id: UUID, credits_reversed: int) -> None:
    await conn.execute(
        "UPDATE credits.purchases SET credits_reversed = $2 WHERE id = $1", purchase_id, credits_reversed
    )


# ---- Stripe events ----


async def record_event(conn: Conn, event_id: str, event_type: str) -> bool:
    """Store the event id; False when it was already processed (a concurrent duplicate waits here)."""
    inserted = await conn.fetchval(
        """
        INSERT INTO credits.stripe_events (id, type, processed_at) VALUES ($1, $2, now())
        ON CONFLICT (id) DO NOTHING RETURNING true
        """,
        event_id,
        event_type,
    )
    return bool(inserted)


async def prune_events(conn: Conn, received_before: datetime) -> int:
    status = await conn.execute("DELETE FROM credits.stripe_events WHERE received_at < $1", received_before)
    return rows_changed(status)
