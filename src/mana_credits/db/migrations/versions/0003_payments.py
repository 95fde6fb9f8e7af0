"""Payments: processed Stripe events, Checkout Sessions, refunded/disputed money and reversed credits.

`amount_refunded` and `amount_disputed` only ever grow (GREATEST), so a repeated or stale refund event
changes nothing; `credits_reversed` is what the ledger already took back, so a larger refund only takes
the difference.

Revision ID: 0003
Revises: 0002
"""

from mana_credits.db.migrate import execute_all

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

STATEMENTS = [
    # Money returned (refund, dispute) for a PaymentIntent we cannot match yet: a Checkout purchase learns
    # its PaymentIntent only when it is paid, and Stripe may announce a refund first.
    """
    CREATE TABLE IF NOT EXISTS credits.stripe_unmatched_returns (
      payment_intent_id text PRIMARY KEY,
      amount_refunded   integer NOT NULL DEFAULT 0,
      amount_disputed   integer NOT NULL DEFAULT 0,
      updated_at        timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS credits.stripe_events (
      id           text PRIMARY KEY,
      type         text NOT NULL,
      received_at  timestamptz NOT NULL DEFAULT now(),
      processed_at timestamptz
    )
    """,
    "CREATE INDEX IF NOT EXISTS stripe_events_received_at_idx ON credits.stripe_events (received_at)",
    "ALTER TABLE credits.purchases ADD COLUMN IF NOT EXISTS stripe_checkout_session_id text UNIQUE",
    "ALTER TABLE credits.purchases ADD COLUMN IF NOT EXISTS credits_reversed integer NOT NULL DEFAULT 0",
    "ALTER TABLE credits.purchases ADD COLUMN IF NOT EXISTS amount_refunded integer NOT NULL DEFAULT 0",
    "ALTER TABLE credits.purchases ADD COLUMN IF NOT EXISTS amount_disputed integer NOT NULL DEFAULT 0",
    "ALTER TABLE credits.purchases ADD CONSTRAINT purchases_credits_reversed_range "
    "CHECK (credits_reversed >= 0 AND credits_reversed <= credits)",
]


def upgrade() -> None:
    execute_all(STATEMENTS)


def downgrade() -> None:
    execute_all(reversed(DOWN))


DOWN = [
    "DROP TABLE IF EXISTS credits.stripe_unmatched_returns",
    "ALTER TABLE credits.purchases DROP CONSTRAINT IF EXISTS purchases_credits_reversed_range",
    "ALTER TABLE credits.purchases DROP COLUMN IF EXISTS amount_disputed",
    "ALTER TABLE credits.purchases DROP COLUMN IF EXISTS amount_refunded",
    "ALTER TABLE credits.purchases DROP COLUMN IF EXISTS credits_reversed",
    "ALTER TABLE credits.purchases DROP COLUMN IF EXISTS stripe_checkout_session_id",
    "DROP INDEX IF EXISTS credits.stripe_events_received_at_idx",
    "DROP TABLE IF EXISTS credits.stripe_events",
]
