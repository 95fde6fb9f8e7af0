"""Holds: expiry, the calling app, and the usage row a commit produced.

Revision ID: 0006
Revises: 0005
"""

from mana_credits.db.migrate import execute_all

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

STATEMENTS = [
    "ALTER TABLE credits.reservations ADD COLUMN IF NOT EXISTS expires_at timestamptz",
    # Holds adopted from the old service had no expiry: give them the default 15 minutes so the sweep
    # releases them instead of keeping those credits reserved forever.
    "UPDATE credits.reservations SET expires_at = created_at + interval '15 minutes' WHERE expires_at IS NULL",
    # The old service kept no `reserved` total (0002 starts it at 0): count its open holds there, so that
    # releasing them gives the credits back instead of driving `reserved` below zero. This assumes, as
    # this service does, that an open hold is out of `balance` and not yet in the ledger.
    """
    UPDATE credits.balances b SET reserved = b.reserved + open.held
    FROM (SELECT user_id, SUM(amount) AS held FROM credits.reservations
          WHERE status = 'reserved' GROUP BY user_id) AS open
    WHERE b.user_id = open.user_id
    """,
    "ALTER TABLE credits.reservations ALTER COLUMN expires_at SET NOT NULL",
    "ALTER TABLE credits.reservations ADD COLUMN IF NOT EXISTS app_id text",
    "ALTER TABLE credits.reservations ADD COLUMN IF NOT EXISTS committed_amount integer",
    "ALTER TABLE credits.reservations ADD COLUMN IF NOT EXISTS transaction_id uuid",
    "ALTER TABLE credits.reservations ADD CONSTRAINT reservations_amount_positive CHECK (amount > 0) NOT VALID",
    "CREATE INDEX IF NOT EXISTS reservations_expiry_idx ON credits.reservations (expires_at) "
    "WHERE status = 'reserved'",
]


def upgrade() -> None:
    execute_all(STATEMENTS)


def downgrade() -> None:
    execute_all(reversed(DOWN))


DOWN = [
    "DROP INDEX IF EXISTS credits.reservations_expiry_idx",
    "ALTER TABLE credits.reservations DROP CONSTRAINT IF EXISTS reservations_amount_positive",
    "ALTER TABLE credits.reservations DROP COLUMN IF EXISTS transaction_id",
    "ALTER TABLE credits.reservations DROP COLUMN IF EXISTS committed_amount",
    "ALTER TABLE credits.reservations DROP COLUMN IF EXISTS app_id",
    "ALTER TABLE credits.reservations DROP COLUMN IF EXISTS expires_at",
]
