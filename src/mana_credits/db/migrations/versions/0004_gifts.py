"""Gifts: one successful redemption per code, indexes for the expiry sweep and pending lookups, and the
shared table of recent gift-code attempts behind the brute-force limit (UNLOGGED: ephemeral by design).

Revision ID: 0004
Revises: 0003
"""

from mana_credits.db.migrate import execute_all

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

STATEMENTS = [
    # A backstop for the redeem claim: one successful redemption per code. The old service's retired
    # split / first-come gifts could have several; such a database keeps its history and goes without.
    """
    DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM gifts.gift_redemptions WHERE status = 'success'
                     GROUP BY gift_code_id HAVING count(*) > 1) THEN
        CREATE UNIQUE INDEX IF NOT EXISTS gift_redemptions_one_success
          ON gifts.gift_redemptions (gift_code_id) WHERE status = 'success';
      END IF;
    END $$
    """,
    "CREATE INDEX IF NOT EXISTS gift_codes_active_expiry_idx ON gifts.gift_codes (expires_at) "
    "WHERE status = 'active'",
    "CREATE INDEX IF NOT EXISTS gift_codes_target_email_idx ON gifts.gift_codes (lower(target_email)) "
    "WHERE status = 'active' AND target_email IS NOT NULL",
    "ALTER TABLE gifts.gift_redemptions ADD COLUMN IF NOT EXISTS client_ip text",
    # NOT VALID: an adopted database keeps its history; every new gift is checked.
    "ALTER TABLE gifts.gift_codes ADD CONSTRAINT gift_codes_total_positive CHECK (total_credits > 0) NOT VALID",
    "CREATE INDEX IF NOT EXISTS gift_codes_creator_created_idx ON gifts.gift_codes (creator_id, created_at DESC)",
    """
    CREATE UNLOGGED TABLE IF NOT EXISTS gifts.guess_attempts (
      id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      subject text NOT NULL,
      at      timestamptz NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS guess_attempts_subject_at_idx ON gifts.guess_attempts (subject, at)",
]


def upgrade() -> None:
    execute_all(STATEMENTS)


def downgrade() -> None:
    execute_all(reversed(DOWN))


DOWN = [
    "DROP TABLE IF EXISTS gifts.guess_attempts",
    "DROP INDEX IF EXISTS gifts.gift_codes_creator_created_idx",
    "ALTER TABLE gifts.gift_codes DROP CONSTRAINT IF EXISTS gift_codes_total_positive",
    "ALTER TABLE gifts.gift_redemptions DROP COLUMN IF EXISTS client_ip",
    "DROP INDEX IF EXISTS gifts.gift_codes_target_email_idx",
    "DROP INDEX IF EXISTS gifts.gift_codes_active_expiry_idx",
    "DROP INDEX IF EXISTS gifts.gift_redemptions_one_success",
]
