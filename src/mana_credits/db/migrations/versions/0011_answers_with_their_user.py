"""Stored idempotent answers name the user they are about, so that account deletion finds them.

An app's keyed debit, refund or hold is stored under the app's scope (`service:<app>`) with the whole
answer (description, metadata). The erasure rewrites those answers by `user_id`; keys stored before this
migration get their user from the answer itself or from the row it points to.

Revision ID: 0011
Revises: 0010
"""

from mana_credits.db.migrate import execute_all

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UP = [
    "ALTER TABLE credits.idempotency_keys ADD COLUMN IF NOT EXISTS user_id text",
    "CREATE INDEX IF NOT EXISTS idempotency_keys_user_idx ON credits.idempotency_keys (user_id) "
    "WHERE user_id IS NOT NULL",
    """
    UPDATE credits.idempotency_keys SET user_id = response_body->'transaction'->>'userId'
    WHERE scope LIKE 'service:%' AND user_id IS NULL AND jsonb_typeof(response_body->'transaction') = 'object'
    """,
    """
    UPDATE credits.idempotency_keys k SET user_id = r.user_id FROM credits.reservations r
    WHERE k.scope LIKE 'service:%' AND k.user_id IS NULL AND r.id::text = k.response_body->>'reservationId'
    """,
    """
    UPDATE credits.idempotency_keys k SET user_id = t.user_id FROM credits.transactions t
    WHERE k.scope LIKE 'service:%' AND k.user_id IS NULL AND t.id::text = k.response_body->>'transactionId'
    """,
]


def upgrade() -> None:
    execute_all(UP)


def downgrade() -> None:
    execute_all(
        [
            "DROP INDEX IF EXISTS credits.idempotency_keys_user_idx",
            "ALTER TABLE credits.idempotency_keys DROP COLUMN IF EXISTS user_id",
        ]
    )
