"""Ledger: reserved credits, integrity checks, per-scope idempotency keys, history index.

Transaction types gain 'reversal' (Stripe refunds and disputes) and 'expiry'. The global UNIQUE on
transactions.idempotency_key goes: keys are scoped per user or per calling service in idempotency_keys.

Revision ID: 0002
Revises: 0001
"""

from mana_credits.db.migrate import execute_all

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

STATEMENTS = [
    "ALTER TYPE public.transaction_type ADD VALUE IF NOT EXISTS 'reversal'",
    "ALTER TYPE public.transaction_type ADD VALUE IF NOT EXISTS 'expiry'",
    "ALTER TABLE credits.balances ADD COLUMN IF NOT EXISTS reserved integer NOT NULL DEFAULT 0",
    "ALTER TABLE credits.balances ADD CONSTRAINT balances_reserved_nonnegative CHECK (reserved >= 0)",
    # NOT VALID: an adopted database keeps its history; every new row is checked.
    "ALTER TABLE credits.transactions ADD CONSTRAINT transactions_amount_nonzero CHECK (amount <> 0) NOT VALID",
    "ALTER TABLE credits.transactions ADD CONSTRAINT transactions_balance_math "
    "CHECK (balance_after = balance_before + amount) NOT VALID",
    "ALTER TABLE credits.transactions DROP CONSTRAINT IF EXISTS transactions_idempotency_key_key",
    "CREATE INDEX IF NOT EXISTS transactions_user_created_idx "
    "ON credits.transactions (user_id, created_at DESC, id DESC)",
    """
    CREATE TABLE IF NOT EXISTS credits.idempotency_keys (
      scope           text NOT NULL,
      key             text NOT NULL,
      request_hash    text NOT NULL,
      response_status integer,
      response_body   jsonb,
      created_at      timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (scope, key)
    )
    """,
    # The old service granted once per (user, metadata.referenceId) by looking at the ledger; carry those
    # references over so that a repeated grant of an adopted database is still `alreadyGranted`.
    """
    INSERT INTO credits.idempotency_keys (scope, key, request_hash, response_status, response_body)
    SELECT DISTINCT ON (user_id, metadata->>'referenceId')
           'grant:' || user_id, metadata->>'referenceId', 'grant', 200,
           jsonb_build_object('ok', true, 'alreadyGranted', true, 'transactionId', id::text)
    FROM credits.transactions
    WHERE type = 'grant' AND metadata->>'referenceId' IS NOT NULL
    ORDER BY user_id, metadata->>'referenceId', created_at
    ON CONFLICT DO NOTHING
    """,
    # Package names become unique (seeding and the operator CLI key on them). An adopted database with two
    # packages of one name keeps both: the later ones get their id appended.
    """
    UPDATE credits.packages p SET name = p.name || ' (' || left(p.id::text, 8) || ')'
    WHERE EXISTS (SELECT 1 FROM credits.packages q
                  WHERE q.name = p.name AND (q.created_at, q.id) < (p.created_at, p.id))
    """,
    "CREATE UNIQUE INDEX IF NOT EXISTS packages_name_key ON credits.packages (name)",
]


def upgrade() -> None:
    execute_all(STATEMENTS)


def downgrade() -> None:
    execute_all(reversed(DOWN))


DOWN = [
    "DROP INDEX IF EXISTS credits.packages_name_key",
    "DROP TABLE IF EXISTS credits.idempotency_keys",
    "DROP INDEX IF EXISTS credits.transactions_user_created_idx",
    "ALTER TABLE credits.transactions DROP CONSTRAINT IF EXISTS transactions_balance_math",
    "ALTER TABLE credits.transactions DROP CONSTRAINT IF EXISTS transactions_amount_nonzero",
    "ALTER TABLE credits.balances DROP CONSTRAINT IF EXISTS balances_reserved_nonnegative",
    "ALTER TABLE credits.balances DROP COLUMN IF EXISTS reserved",
]
