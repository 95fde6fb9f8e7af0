"""Each Stripe dispute and refund with its latest status, so the credits follow the state Stripe reports
(whatever order its events arrive in) instead of a running counter.

Revision ID: 0009
Revises: 0008
"""

from mana_credits.db.migrate import execute_all

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

STATEMENTS = [
    """
    CREATE TABLE IF NOT EXISTS credits.stripe_returns (
      id                text PRIMARY KEY,
      kind              text NOT NULL CHECK (kind IN ('dispute', 'refund')),
      payment_intent_id text NOT NULL,
      amount            integer NOT NULL,
      status            text NOT NULL,
      updated_at        timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX IF NOT EXISTS stripe_returns_payment_intent_idx ON credits.stripe_returns (payment_intent_id)",
    # Disputes counted before this table existed: kept as open chargebacks, so nothing is given back.
    """
    INSERT INTO credits.stripe_returns (id, kind, payment_intent_id, amount, status)
    SELECT 'earlier:' || id, 'dispute', stripe_payment_intent_id, amount_disputed, 'needs_response'
    FROM credits.purchases WHERE amount_disputed > 0 AND stripe_payment_intent_id IS NOT NULL
    ON CONFLICT (id) DO NOTHING
    """,
]


def upgrade() -> None:
    execute_all(STATEMENTS)


def downgrade() -> None:
    execute_all(["DROP TABLE IF EXISTS credits.stripe_returns"])
