"""Fractional usage accrues per user and app (issue #25 item 3).

`credits.usage_accruals` keeps, per user and app, what was charged in fractions (`charged`), the whole
credits billed from it through the ledger (`billed`, each one usage row with `metadata.accrual`) and what
is accrued but not yet billed (`accrued`, below one credit): charged = billed + accrued, always (checked
here), and each rollup has a row in `credits.accrual_rollups` beside its ledger row: `audit` checks billed
against them and them against the ledger. The rows hold amounts and ids only, so an erasure
keeps them like the ledger's amounts; the erasure keeps `metadata.accrual` of the rollup rows for the same
reason (it is numbers).

Revision ID: 0013
Revises: 0012
"""

from mana_credits.db.migrate import execute_all

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

KEPT_METADATA = (
    "'purchaseId', 'paymentIntentId', 'checkoutSessionId', 'reservationId', 'giftCodeId', 'refundOf', "
    "'referenceId', 'period', 'disputeId'"
)


def _erased_metadata(kept: str) -> str:
    return f"""
    CREATE OR REPLACE FUNCTION credits.erased_metadata(metadata jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE AS $$
      SELECT CASE WHEN jsonb_typeof(metadata) = 'object' THEN
        (SELECT jsonb_object_agg(key, value) FROM jsonb_each(metadata) WHERE key IN ({kept}))
      END
    $$
    """


UP = [
    """
    CREATE TABLE IF NOT EXISTS credits.usage_accruals (
      user_id    text NOT NULL,
      app_id     text NOT NULL,
      charged    numeric(16, 3) NOT NULL DEFAULT 0 CHECK (charged >= 0),
      billed     bigint NOT NULL DEFAULT 0 CHECK (billed >= 0),
      accrued    numeric(4, 3) NOT NULL DEFAULT 0 CHECK (accrued >= 0 AND accrued < 1),
      charges    bigint NOT NULL DEFAULT 0,
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (user_id, app_id),
      CONSTRAINT usage_accruals_add_up CHECK (charged = billed + accrued)
    )
    """,
    # One row per whole-credit rollup, beside its ledger row (same transaction): what audit adds up.
    """
    CREATE TABLE IF NOT EXISTS credits.accrual_rollups (
      transaction_id uuid PRIMARY KEY,
      user_id        text NOT NULL,
      app_id         text NOT NULL,
      credits        integer NOT NULL CHECK (credits > 0),
      created_at     timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX IF NOT EXISTS accrual_rollups_user_app_idx ON credits.accrual_rollups (user_id, app_id)",
    _erased_metadata(KEPT_METADATA + ", 'accrual'"),
]

DOWN = [
    _erased_metadata(KEPT_METADATA),
    "DROP TABLE IF EXISTS credits.accrual_rollups",
    "DROP TABLE IF EXISTS credits.usage_accruals",
]


def upgrade() -> None:
    execute_all(UP)


def downgrade() -> None:
    execute_all(DOWN)
