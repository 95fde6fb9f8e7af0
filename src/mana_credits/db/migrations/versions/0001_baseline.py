"""Baseline: the schema of the old TypeScript service, created only where missing.

An existing production database of the old service is adopted in place: every statement is
`IF NOT EXISTS` (or ignores an existing type), so upgrading it to head changes nothing here.

Revision ID: 0001
"""

from alembic import op

from mana_credits.db.migrate import execute_all

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Every value the service writes, per enum type.
ENUM_VALUES = {
    "transaction_type": ("purchase", "usage", "refund", "gift", "grant", "reversal", "expiry"),
    "transaction_status": ("pending", "completed", "failed", "cancelled"),
    "gift_code_type": ("simple", "personalized"),
    "gift_code_status": ("active", "depleted", "expired", "cancelled", "refunded"),
    "gift_redemption_status": (
        "success",
        "failed_wrong_user",
        "failed_depleted",
        "failed_expired",
        "failed_already_claimed",
    ),
    "reservation_status": ("reserved", "committed", "refunded"),
    "sync_billing_interval": ("monthly", "quarterly", "yearly"),
}

STATEMENTS = [
    """
CREATE SCHEMA IF NOT EXISTS credits
    """,
    """
CREATE SCHEMA IF NOT EXISTS gifts
    """,
    """
DO $$ BEGIN CREATE TYPE public.transaction_type AS ENUM ('purchase', 'usage', 'refund', 'gift', 'grant'); EXCEPTION WHEN duplicate_object THEN NULL; END $$
    """,
    """
DO $$ BEGIN CREATE TYPE public.transaction_status AS ENUM ('pending', 'completed', 'failed', 'cancelled'); EXCEPTION WHEN duplicate_object THEN NULL; END $$
    """,
    """
DO $$ BEGIN CREATE TYPE public.gift_code_type AS ENUM ('simple', 'personalized'); EXCEPTION WHEN duplicate_object THEN NULL; END $$
    """,
    """
DO $$ BEGIN CREATE TYPE public.gift_code_status AS ENUM ('active', 'depleted', 'expired', 'cancelled', 'refunded'); EXCEPTION WHEN duplicate_object THEN NULL; END $$
    """,
    """
DO $$ BEGIN CREATE TYPE public.gift_redemption_status AS ENUM ('success', 'failed_wrong_user', 'failed_depleted', 'failed_expired', 'failed_already_claimed'); EXCEPTION WHEN duplicate_object THEN NULL; END $$
    """,
    """
DO $$ BEGIN CREATE TYPE public.reservation_status AS ENUM ('reserved', 'committed', 'refunded'); EXCEPTION WHEN duplicate_object THEN NULL; END $$
    """,
    """
DO $$ BEGIN CREATE TYPE public.sync_billing_interval AS ENUM ('monthly', 'quarterly', 'yearly'); EXCEPTION WHEN duplicate_object THEN NULL; END $$
    """,
    # An adopted type may lack values the service writes (the old service added 'grant' by a hand-run SQL
    # file): add every one, whatever is there. Each migration commits on its own, so later ones may use them.
    *[
        f"ALTER TYPE public.{type_} ADD VALUE IF NOT EXISTS '{value}'"
        for type_, values in ENUM_VALUES.items()
        for value in values
    ],
    """
CREATE TABLE IF NOT EXISTS credits.balances (
  user_id      text PRIMARY KEY,
  balance      integer NOT NULL DEFAULT 0,
  total_earned integer NOT NULL DEFAULT 0,
  total_spent  integer NOT NULL DEFAULT 0,
  version      integer NOT NULL DEFAULT 0,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
)
    """,
    """
CREATE TABLE IF NOT EXISTS credits.transactions (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id         text NOT NULL,
  type            public.transaction_type NOT NULL,
  status          public.transaction_status NOT NULL DEFAULT 'pending',
  amount          integer NOT NULL,
  balance_before  integer NOT NULL,
  balance_after   integer NOT NULL,
  app_id          text NOT NULL,
  description     text NOT NULL,
  metadata        jsonb,
  idempotency_key text UNIQUE,
  created_at      timestamptz NOT NULL DEFAULT now(),
  completed_at    timestamptz
)
    """,
    """
CREATE INDEX IF NOT EXISTS transactions_user_id_idx ON credits.transactions (user_id)
    """,
    """
CREATE INDEX IF NOT EXISTS transactions_app_id_idx ON credits.transactions (app_id)
    """,
    """
CREATE INDEX IF NOT EXISTS transactions_created_at_idx ON credits.transactions (created_at)
    """,
    """
CREATE INDEX IF NOT EXISTS transactions_idempotency_key_idx ON credits.transactions (idempotency_key)
    """,
    """
CREATE INDEX IF NOT EXISTS transactions_reference_id_idx ON credits.transactions ((metadata->>'referenceId'))
  WHERE metadata->>'referenceId' IS NOT NULL
    """,
    """
CREATE TABLE IF NOT EXISTS credits.packages (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name             text NOT NULL,
  description      text,
  credits          integer NOT NULL,
  price_euro_cents integer NOT NULL,
  stripe_price_id  text UNIQUE,
  active           boolean NOT NULL DEFAULT true,
  sort_order       integer NOT NULL DEFAULT 0,
  metadata         jsonb,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
)
    """,
    """
CREATE TABLE IF NOT EXISTS credits.purchases (
  id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id                  text NOT NULL,
  package_id               uuid REFERENCES credits.packages (id),
  credits                  integer NOT NULL,
  price_euro_cents         integer NOT NULL,
  stripe_payment_intent_id text UNIQUE,
  stripe_customer_id       text,
  status                   public.transaction_status NOT NULL DEFAULT 'pending',
  metadata                 jsonb,
  created_at               timestamptz NOT NULL DEFAULT now(),
  completed_at             timestamptz
)
    """,
    """
CREATE INDEX IF NOT EXISTS purchases_user_id_idx ON credits.purchases (user_id)
    """,
    """
CREATE INDEX IF NOT EXISTS purchases_stripe_payment_intent_id_idx ON credits.purchases (stripe_payment_intent_id)
    """,
    """
CREATE TABLE IF NOT EXISTS credits.usage_stats (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id      text NOT NULL,
  app_id       text NOT NULL,
  credits_used integer NOT NULL,
  date         timestamptz NOT NULL,
  metadata     jsonb
)
    """,
    """
CREATE INDEX IF NOT EXISTS usage_stats_user_id_date_idx ON credits.usage_stats (user_id, date)
    """,
    """
CREATE INDEX IF NOT EXISTS usage_stats_app_id_date_idx ON credits.usage_stats (app_id, date)
    """,
    """
CREATE TABLE IF NOT EXISTS credits.stripe_customers (
  user_id            text PRIMARY KEY,
  stripe_customer_id text NOT NULL UNIQUE,
  email              text,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
)
    """,
    """
CREATE TABLE IF NOT EXISTS credits.reservations (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id     text NOT NULL,
  amount      integer NOT NULL,
  reason      text NOT NULL,
  status      public.reservation_status NOT NULL DEFAULT 'reserved',
  created_at  timestamptz NOT NULL DEFAULT now(),
  resolved_at timestamptz
)
    """,
    """
CREATE INDEX IF NOT EXISTS reservations_user_id_idx ON credits.reservations (user_id)
    """,
    """
CREATE INDEX IF NOT EXISTS reservations_status_idx ON credits.reservations (status)
    """,
    """
CREATE TABLE IF NOT EXISTS credits.sync_subscriptions (
  user_id          text PRIMARY KEY,
  active           boolean NOT NULL DEFAULT false,
  billing_interval public.sync_billing_interval NOT NULL DEFAULT 'monthly',
  amount_charged   integer NOT NULL DEFAULT 30,
  activated_at     timestamptz,
  next_charge_at   timestamptz,
  paused_at        timestamptz,
  is_gifted        boolean NOT NULL DEFAULT false,
  gifted_by        text,
  gifted_at        timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
)
    """,
    """
CREATE TABLE IF NOT EXISTS gifts.gift_codes (
  id                         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  code                       text NOT NULL UNIQUE,
  short_url                  text,
  creator_id                 text NOT NULL,
  creator_name               text,
  total_credits              integer NOT NULL,
  redeemed                   integer NOT NULL DEFAULT 0,
  type                       public.gift_code_type NOT NULL DEFAULT 'simple',
  status                     public.gift_code_status NOT NULL DEFAULT 'active',
  target_email               text,
  message                    text,
  expires_at                 timestamptz,
  reservation_transaction_id uuid,
  created_at                 timestamptz NOT NULL DEFAULT now(),
  updated_at                 timestamptz NOT NULL DEFAULT now()
)
    """,
    """
CREATE INDEX IF NOT EXISTS gift_codes_code_idx ON gifts.gift_codes (code)
    """,
    """
CREATE INDEX IF NOT EXISTS gift_codes_creator_idx ON gifts.gift_codes (creator_id)
    """,
    """
CREATE INDEX IF NOT EXISTS gift_codes_status_idx ON gifts.gift_codes (status)
    """,
    """
CREATE INDEX IF NOT EXISTS gift_codes_expires_at_idx ON gifts.gift_codes (expires_at)
    """,
    """
CREATE TABLE IF NOT EXISTS gifts.gift_redemptions (
  id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  gift_code_id          uuid NOT NULL REFERENCES gifts.gift_codes (id) ON DELETE CASCADE,
  redeemer_user_id      text NOT NULL,
  status                public.gift_redemption_status NOT NULL,
  credits_received      integer NOT NULL DEFAULT 0,
  credit_transaction_id uuid,
  source_app_id         text,
  created_at            timestamptz NOT NULL DEFAULT now()
)
    """,
    """
CREATE INDEX IF NOT EXISTS gift_redemptions_gift_code_idx ON gifts.gift_redemptions (gift_code_id)
    """,
    """
CREATE INDEX IF NOT EXISTS gift_redemptions_redeemer_idx ON gifts.gift_redemptions (redeemer_user_id)
    """,
    """
CREATE INDEX IF NOT EXISTS gift_redemptions_status_idx ON gifts.gift_redemptions (status)
    """,
]


def upgrade() -> None:
    execute_all(STATEMENTS)


def downgrade() -> None:
    op.execute("DROP SCHEMA IF EXISTS gifts CASCADE")
    op.execute("DROP SCHEMA IF EXISTS credits CASCADE")
    for name in (
        "transaction_type",
        "transaction_status",
        "gift_code_type",
        "gift_code_status",
        "gift_redemption_status",
        "reservation_status",
        "sync_billing_interval",
    ):
        op.execute(f"DROP TYPE IF EXISTS public.{name}")
