"""Balance totals that cannot overflow: create/cancel cycles grow them without bound.

Revision ID: 0008
Revises: 0007
"""

from mana_credits.db.migrate import execute_all

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# ALTER … TYPE rewrites the columns in place, whatever the old database named its constraints.
STATEMENTS = [
    "ALTER TABLE credits.balances ALTER COLUMN total_earned TYPE bigint, ALTER COLUMN total_spent TYPE bigint",
]


def upgrade() -> None:
    execute_all(STATEMENTS)


def downgrade() -> None:
    execute_all(
        [
            "ALTER TABLE credits.balances ALTER COLUMN total_earned TYPE integer, "
            "ALTER COLUMN total_spent TYPE integer"
        ]
    )
