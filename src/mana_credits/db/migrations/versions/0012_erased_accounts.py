"""Erased accounts stay erased: a tombstone per erased user id, and rows written for it later keep no text.

Account deletion erases what the rows say about a person. A write that arrives after it (a service that
still sends, a token still valid for a few minutes) moves credits as asked, but BEFORE triggers store it
the way the erasure leaves rows: a ledger row's description becomes its type and its metadata keeps only
ids, a usage row has no metadata, a hold's reason becomes its app, a gift has no sender name or message.
The trigger functions are VOLATILE: each of their queries takes a fresh snapshot, so a statement that
waited on the erasure's lock sees the tombstone it committed. `credits.erased_metadata` (which metadata
survives) and `credits.hold_app` are the one rule; the erasure itself uses them too.

Revision ID: 0012
Revises: 0011
"""

from mana_credits.db.migrate import execute_all

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# Metadata keys that are bookkeeping references (ids), kept by an erasure; everything else goes.
KEPT_METADATA = (
    "'purchaseId', 'paymentIntentId', 'checkoutSessionId', 'reservationId', 'giftCodeId', 'refundOf', "
    "'referenceId', 'period', 'disputeId'"
)

UP = [
    """
    CREATE TABLE IF NOT EXISTS credits.erased_accounts (
      user_id   text PRIMARY KEY,
      erased_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    f"""
    CREATE OR REPLACE FUNCTION credits.erased_metadata(metadata jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE AS $$
      -- The old service's metadata may be any JSON (an array, a string): only an object keeps ids.
      SELECT CASE WHEN jsonb_typeof(metadata) = 'object' THEN
        (SELECT jsonb_object_agg(key, value) FROM jsonb_each(metadata) WHERE key IN ({KEPT_METADATA}))
      END
    $$
    """,
    """
    CREATE OR REPLACE FUNCTION credits.hold_app(app_id text, reason text) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
      -- A hold of the old service has no app: the reason's prefix is what it was booked to.
      SELECT COALESCE(app_id, CASE WHEN position(':' IN reason) > 1 THEN split_part(reason, ':', 1)
                                   ELSE 'mana-research' END)
    $$
    """,
    """
    CREATE OR REPLACE FUNCTION credits.erased_transaction() RETURNS trigger LANGUAGE plpgsql VOLATILE AS $$
    BEGIN
      IF EXISTS (SELECT 1 FROM credits.erased_accounts WHERE user_id = NEW.user_id) THEN
        NEW.description := initcap(NEW.type::text);
        NEW.metadata := credits.erased_metadata(NEW.metadata);
      END IF;
      RETURN NEW;
    END $$
    """,
    """
    CREATE OR REPLACE FUNCTION credits.erased_usage() RETURNS trigger LANGUAGE plpgsql VOLATILE AS $$
    BEGIN
      IF NEW.metadata IS NOT NULL
         AND EXISTS (SELECT 1 FROM credits.erased_accounts WHERE user_id = NEW.user_id) THEN
        NEW.metadata := NULL;
      END IF;
      RETURN NEW;
    END $$
    """,
    """
    CREATE OR REPLACE FUNCTION credits.erased_reservation() RETURNS trigger LANGUAGE plpgsql VOLATILE AS $$
    BEGIN
      IF EXISTS (SELECT 1 FROM credits.erased_accounts WHERE user_id = NEW.user_id) THEN
        NEW.app_id := credits.hold_app(NEW.app_id, NEW.reason);
        NEW.reason := NEW.app_id;
      END IF;
      RETURN NEW;
    END $$
    """,
    """
    CREATE OR REPLACE FUNCTION gifts.erased_gift() RETURNS trigger LANGUAGE plpgsql VOLATILE AS $$
    BEGIN
      IF (NEW.creator_name IS NOT NULL OR NEW.message IS NOT NULL)
         AND EXISTS (SELECT 1 FROM credits.erased_accounts WHERE user_id = NEW.creator_id) THEN
        NEW.creator_name := NULL;
        NEW.message := NULL;
      END IF;
      RETURN NEW;
    END $$
    """,
    "DROP TRIGGER IF EXISTS erased_account ON credits.transactions",
    "CREATE TRIGGER erased_account BEFORE INSERT ON credits.transactions "
    "FOR EACH ROW EXECUTE FUNCTION credits.erased_transaction()",
    "DROP TRIGGER IF EXISTS erased_account ON credits.usage_stats",
    "CREATE TRIGGER erased_account BEFORE INSERT OR UPDATE ON credits.usage_stats "
    "FOR EACH ROW EXECUTE FUNCTION credits.erased_usage()",
    "DROP TRIGGER IF EXISTS erased_account ON credits.reservations",
    "CREATE TRIGGER erased_account BEFORE INSERT ON credits.reservations "
    "FOR EACH ROW EXECUTE FUNCTION credits.erased_reservation()",
    "DROP TRIGGER IF EXISTS erased_account ON gifts.gift_codes",
    "CREATE TRIGGER erased_account BEFORE INSERT ON gifts.gift_codes "
    "FOR EACH ROW EXECUTE FUNCTION gifts.erased_gift()",
]

DOWN = [
    "DROP TRIGGER IF EXISTS erased_account ON gifts.gift_codes",
    "DROP TRIGGER IF EXISTS erased_account ON credits.reservations",
    "DROP TRIGGER IF EXISTS erased_account ON credits.usage_stats",
    "DROP TRIGGER IF EXISTS erased_account ON credits.transactions",
    "DROP FUNCTION IF EXISTS gifts.erased_gift()",
    "DROP FUNCTION IF EXISTS credits.erased_reservation()",
    "DROP FUNCTION IF EXISTS credits.erased_usage()",
    "DROP FUNCTION IF EXISTS credits.erased_transaction()",
    "DROP FUNCTION IF EXISTS credits.hold_app(text, text)",
    "DROP FUNCTION IF EXISTS credits.erased_metadata(jsonb)",
    "DROP TABLE IF EXISTS credits.erased_accounts",
]


def upgrade() -> None:
    execute_all(UP)


def downgrade() -> None:
    execute_all(DOWN)
