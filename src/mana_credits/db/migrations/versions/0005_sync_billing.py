"""Cloud-sync billing: cancellation, anchor day, retry state, the recipient email, the notification outbox.

Revision ID: 0005
Revises: 0004
"""

from mana_credits.db.migrate import execute_all

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

STATEMENTS = [
    "ALTER TABLE credits.sync_subscriptions ADD COLUMN IF NOT EXISTS cancel_at_period_end boolean NOT NULL DEFAULT false",
    "ALTER TABLE credits.sync_subscriptions ADD COLUMN IF NOT EXISTS current_period_end timestamptz",
    "ALTER TABLE credits.sync_subscriptions ADD COLUMN IF NOT EXISTS anchor_day smallint",
    "ALTER TABLE credits.sync_subscriptions ADD COLUMN IF NOT EXISTS email text",
    "ALTER TABLE credits.sync_subscriptions ADD COLUMN IF NOT EXISTS failure_count integer NOT NULL DEFAULT 0",
    "ALTER TABLE credits.sync_subscriptions ADD COLUMN IF NOT EXISTS retry_at timestamptz",
    "ALTER TABLE credits.sync_subscriptions ADD CONSTRAINT sync_subscriptions_anchor_day "
    "CHECK (anchor_day BETWEEN 1 AND 31)",
    "ALTER TABLE credits.sync_subscriptions ADD CONSTRAINT sync_subscriptions_failure_count "
    "CHECK (failure_count >= 0)",
    "CREATE INDEX IF NOT EXISTS sync_subscriptions_due_idx ON credits.sync_subscriptions (next_charge_at) "
    "WHERE active AND NOT is_gifted",
    # Rows adopted from the old service: the paid period ends at the next charge, anchored on its day; an
    # active paid row that never got a next date is due now (charged at the next run, or paused).
    """
    UPDATE credits.sync_subscriptions
    SET current_period_end = COALESCE(current_period_end, next_charge_at),
        anchor_day = COALESCE(anchor_day, EXTRACT(DAY FROM next_charge_at AT TIME ZONE 'UTC')::smallint)
    WHERE next_charge_at IS NOT NULL
    """,
    "UPDATE credits.sync_subscriptions SET next_charge_at = now() "
    "WHERE active AND NOT is_gifted AND next_charge_at IS NULL",
    """
    CREATE TABLE IF NOT EXISTS credits.notification_outbox (
      id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      external_id     text NOT NULL UNIQUE,
      payload         jsonb NOT NULL,
      attempts        integer NOT NULL DEFAULT 0,
      next_attempt_at timestamptz NOT NULL DEFAULT now(),
      delivered_at    timestamptz,
      last_error      text,
      created_at      timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX IF NOT EXISTS notification_outbox_pending_idx ON credits.notification_outbox (next_attempt_at) "
    "WHERE delivered_at IS NULL",
]


def upgrade() -> None:
    execute_all(STATEMENTS)


def downgrade() -> None:
    execute_all(reversed(DOWN))


DOWN = [
    "DROP TABLE IF EXISTS credits.notification_outbox",
    "DROP INDEX IF EXISTS credits.sync_subscriptions_due_idx",
    "ALTER TABLE credits.sync_subscriptions DROP CONSTRAINT IF EXISTS sync_subscriptions_failure_count",
    "ALTER TABLE credits.sync_subscriptions DROP CONSTRAINT IF EXISTS sync_subscriptions_anchor_day",
    "ALTER TABLE credits.sync_subscriptions DROP COLUMN IF EXISTS retry_at",
    "ALTER TABLE credits.sync_subscriptions DROP COLUMN IF EXISTS failure_count",
    "ALTER TABLE credits.sync_subscriptions DROP COLUMN IF EXISTS email",
    "ALTER TABLE credits.sync_subscriptions DROP COLUMN IF EXISTS anchor_day",
    "ALTER TABLE credits.sync_subscriptions DROP COLUMN IF EXISTS current_period_end",
    "ALTER TABLE credits.sync_subscriptions DROP COLUMN IF EXISTS cancel_at_period_end",
]
