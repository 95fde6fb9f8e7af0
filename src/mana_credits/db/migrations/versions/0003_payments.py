"""Payments: processed Stripe events, Checkout Sessions, reversed credits per purchase.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

STATEMENTS = [
    """
    CREATE TABLE IF NOT EXISTS credits.stripe_events (
      id           text PRIMARY KEY,
      type         text NOT NULL,
      received_at  timestamptz NOT NULL DEFAULT now(),
      processed_at timestamptz
    )
    """,
    "ALTER TABLE credits.purchases ADD COLUMN IF NOT EXISTS stripe_checkout_session_id text UNIQUE",
    "ALTER TABLE credits.purchases ADD COLUMN IF NOT EXISTS credits_reversed integer NOT NULL DEFAULT 0",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for statement in reversed(DOWN):
        op.execute(statement)


DOWN = [
    "ALTER TABLE credits.purchases DROP COLUMN IF EXISTS credits_reversed",
    "ALTER TABLE credits.purchases DROP COLUMN IF EXISTS stripe_checkout_session_id",
    "DROP TABLE IF EXISTS credits.stripe_events",
]
