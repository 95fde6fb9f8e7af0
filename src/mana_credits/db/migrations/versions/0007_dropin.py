"""Drop-in for the real old database: adopt by what the catalog says, carry old idempotency keys.

Revision ID: 0007
Revises: 0006
"""

from mana_credits.db.migrate import execute_all

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

STATEMENTS: list[str] = []


def upgrade() -> None:
    execute_all(STATEMENTS)


def downgrade() -> None:
    pass
