"""History filtered by type and app: an index that serves it in order, however long the user's history.

Without it, a filter matching few of a heavy user's rows walked that user's whole history.

Revision ID: 0010
Revises: 0009
"""

from mana_credits.db.migrate import execute_all

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_all(
        [
            "CREATE INDEX IF NOT EXISTS transactions_user_type_app_created_idx "
            "ON credits.transactions (user_id, type, app_id, created_at DESC, id DESC)"
        ]
    )


def downgrade() -> None:
    execute_all(["DROP INDEX IF EXISTS credits.transactions_user_type_app_created_idx"])
