"""Drop-in for the real old database: adopt by what the catalog says, carry old idempotency keys.

The old service's tables were made by `drizzle-kit push`, so constraint names are Drizzle's
(`transactions_idempotency_key_unique`), not the ones 0002 assumed. Here every UNIQUE on
transactions.idempotency_key alone goes, whatever its name: keys are scoped per user or caller now.

The old service deduplicated `credits/use` by the ledger row's idempotency key. Keys of the last 30 days
(the retention of request keys) are carried into the idempotency store under the row's user, so a client
retrying across the cut-over gets a replay instead of a second charge.

Revision ID: 0007
Revises: 0006
"""

from mana_credits.db.migrate import execute_all

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

STATEMENTS = [
    """
    DO $$
    DECLARE
      key_column smallint := (SELECT attnum FROM pg_attribute
                              WHERE attrelid = 'credits.transactions'::regclass AND attname = 'idempotency_key');
      found record;
    BEGIN
      FOR found IN SELECT conname FROM pg_constraint
                   WHERE conrelid = 'credits.transactions'::regclass AND contype = 'u'
                     AND conkey = ARRAY[key_column]
      LOOP
        EXECUTE format('ALTER TABLE credits.transactions DROP CONSTRAINT %I', found.conname);
      END LOOP;
      -- A unique index made without a constraint (CREATE UNIQUE INDEX) enforces the same.
      FOR found IN SELECT indexrelid::regclass::text AS name FROM pg_index
                   WHERE indrelid = 'credits.transactions'::regclass AND indisunique AND NOT indisprimary
                     AND indkey::text = key_column::text
      LOOP
        EXECUTE format('DROP INDEX %s', found.name);
      END LOOP;
    END $$
    """,
    """
    INSERT INTO credits.idempotency_keys (scope, key, request_hash, response_status, response_body)
    SELECT DISTINCT ON (t.user_id, t.idempotency_key)
           'legacy:' || t.user_id, t.idempotency_key, 'legacy', 200,
           jsonb_build_object(
             'success', true,
             'message', 'Transaction already processed',
             'transaction', jsonb_build_object(
               'id', t.id, 'userId', t.user_id, 'type', t.type, 'status', t.status, 'amount', t.amount,
               'balanceBefore', t.balance_before, 'balanceAfter', t.balance_after, 'appId', t.app_id,
               'description', t.description, 'metadata', t.metadata, 'idempotencyKey', t.idempotency_key,
               'createdAt', t.created_at, 'completedAt', t.completed_at),
             'newBalance', jsonb_build_object('balance', t.balance_after))
    FROM credits.transactions t
    WHERE t.idempotency_key IS NOT NULL AND t.created_at > now() - interval '30 days'
    ORDER BY t.user_id, t.idempotency_key, t.created_at
    ON CONFLICT DO NOTHING
    """,
    # A hold the expiry sweep released can still be committed late (charged from the balance, once).
    "ALTER TABLE credits.reservations ADD COLUMN IF NOT EXISTS released_by_expiry boolean NOT NULL DEFAULT false",
]

DOWN = [
    "ALTER TABLE credits.reservations DROP COLUMN IF EXISTS released_by_expiry",
    "DELETE FROM credits.idempotency_keys WHERE scope LIKE 'legacy:%'",
]


def upgrade() -> None:
    execute_all(STATEMENTS)


def downgrade() -> None:
    execute_all(DOWN)
