"""The statement's SQL: the month's flows by kind, outstanding credits at two instants, holds.

Ledger rows are stamped with the database's `now()` when written, so `created_at` orders them in time; a
row at exactly the month's first instant belongs to that month. Every query reads the same snapshot (the
caller's repeatable-read transaction).
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from mana_credits.books.schemas import Holds
from mana_credits.db.pool import Conn
from mana_credits.kit.records import from_record
from mana_credits.payments.schemas import PurchaseReturns

# Details beyond this many per kind (the largest first) are folded into one line: usage descriptions are
# the callers' free text, and a statement must stay a page.
DETAILS_PER_KIND = 40

# One group per kind of flow and its natural breakdown; the sign is part of the group, so a row of any
# sign lands somewhere and the groups always add up to the ledger's movement.
_FLOWS = f"""
WITH month AS (
  SELECT t.type::text AS type, t.amount, t.app_id, t.description, t.metadata
  FROM credits.transactions t
  WHERE t.status = 'completed' AND t.created_at >= $1 AND t.created_at < $2
), kinds AS (
  SELECT m.amount,
         CASE
           WHEN m.type = 'purchase' THEN 'purchased'
           WHEN m.type = 'grant' THEN 'granted'
           WHEN m.type = 'usage' AND m.app_id = 'sync' THEN 'sync_renewals'
           WHEN m.type = 'usage' THEN 'usage'
           WHEN m.type = 'refund' AND m.app_id = 'gifts' AND m.metadata ? 'giftCodeId' THEN 'gifts_cancelled'
           WHEN m.type = 'refund' THEN 'usage_refunded'
           WHEN m.type = 'expiry' THEN 'gifts_expired'
           WHEN m.type = 'gift' AND m.amount < 0 THEN 'gifts_reserved'
           WHEN m.type = 'gift' THEN 'gifts_redeemed'
           WHEN m.type = 'reversal' AND m.amount < 0 THEN 'stripe_reversed'
           WHEN m.type = 'reversal' THEN 'stripe_restored'
           ELSE 'other_' || m.type
         END AS kind,
         CASE
           WHEN m.type = 'purchase' THEN COALESCE(pk.name, p.metadata->>'packageName', '(unknown package)')
           WHEN m.type = 'grant' THEN COALESCE(m.metadata->>'reason', '(no reason)') || ' / ' || m.app_id
           WHEN m.type = 'usage' AND m.app_id = 'sync' THEN COALESCE(m.metadata->>'interval', '(erased)')
           WHEN m.type = 'usage' THEN m.app_id || ' / ' || COALESCE(m.metadata->>'operation', m.description)
           WHEN m.type = 'refund' AND NOT (m.app_id = 'gifts' AND m.metadata ? 'giftCodeId') THEN m.app_id
           ELSE ''
         END AS detail,
         p.price_euro_cents AS euro_cents
  FROM month m
  LEFT JOIN credits.purchases p ON m.type = 'purchase' AND p.id::text = m.metadata->>'purchaseId'
  LEFT JOIN credits.packages pk ON pk.id = p.package_id
), grouped AS (
  SELECT kind, detail, amount >= 0 AS inflow, count(*) AS count, SUM(amount)::bigint AS credits,
         SUM(euro_cents)::bigint AS euro_cents
  FROM kinds GROUP BY kind, detail, amount >= 0
), ranked AS (
  SELECT *, row_number() OVER (PARTITION BY kind, inflow ORDER BY abs(credits) DESC, detail) AS place,
         count(*) OVER (PARTITION BY kind, inflow) AS details
  FROM grouped
)
SELECT kind, CASE WHEN place <= {DETAILS_PER_KIND} THEN detail
                  ELSE '(' || (details - {DETAILS_PER_KIND}) || ' more)' END AS detail,
       inflow, SUM(count)::bigint AS count, SUM(credits)::bigint AS credits,
       SUM(euro_cents)::bigint AS euro_cents
FROM ranked
GROUP BY 1, 2, 3
ORDER BY kind, inflow DESC, abs(SUM(credits)) DESC, detail
"""

# Outstanding credits per user at both instants, twice: from the ledger (the rows before the instant) and
# from the balance rows (today's balance + reserved, less the rows since). The two differ exactly for the
# users whose balance row disagrees with their ledger; those are listed. One pass over the ledger.
_OUTSTANDING = """
WITH ledger AS (
  SELECT user_id,
         SUM(amount)::bigint AS total,
         COALESCE(SUM(amount) FILTER (WHERE created_at < $1), 0)::bigint AS opening,
         COALESCE(SUM(amount) FILTER (WHERE created_at < $2), 0)::bigint AS closing
  FROM credits.transactions
  WHERE status = 'completed'
  GROUP BY user_id
), joined AS MATERIALIZED (
  SELECT COALESCE(l.user_id, b.user_id) AS user_id,
         COALESCE(l.total, 0) AS total, COALESCE(l.opening, 0) AS opening, COALESCE(l.closing, 0) AS closing,
         COALESCE(b.balance + b.reserved, 0)::bigint AS current, e.erased_at
  FROM ledger l
  FULL JOIN credits.balances b USING (user_id)
  LEFT JOIN credits.erased_accounts e ON e.user_id = COALESCE(l.user_id, b.user_id)
)
SELECT
  COALESCE(SUM(opening), 0)::bigint AS ledger_opening,
  COALESCE(SUM(closing), 0)::bigint AS ledger_closing,
  COALESCE(SUM(current - total + opening), 0)::bigint AS balances_opening,
  COALESCE(SUM(current - total + closing), 0)::bigint AS balances_closing,
  count(*) FILTER (WHERE opening <> 0) AS users_opening,
  count(*) FILTER (WHERE closing <> 0) AS users_closing,
  count(*) FILTER (WHERE erased_at >= $1 AND erased_at < $2) AS erased_in_month,
  COALESCE(SUM(closing) FILTER (WHERE erased_at >= $1 AND erased_at < $2), 0)::bigint
    AS erased_in_month_credits,
  count(*) FILTER (WHERE erased_at < $2 AND closing <> 0) AS erased_holding,
  COALESCE(SUM(closing) FILTER (WHERE erased_at < $2), 0)::bigint AS erased_holding_credits,
  count(*) FILTER (WHERE current <> total) AS mismatched_users,
  (SELECT COALESCE(json_agg(json_build_object('user_id', user_id, 'difference', current - total)), '[]')
   FROM (SELECT user_id, current, total FROM joined WHERE current <> total
         ORDER BY abs(current - total) DESC, user_id LIMIT $3) AS worst)::text AS mismatches
FROM joined
"""

# Rows of the month whose own arithmetic is off (a row changed after it was written).
_BROKEN_ROWS = """
SELECT id::text AS id, user_id, amount, balance_before, balance_after
FROM credits.transactions
WHERE status = 'completed' AND created_at >= $1 AND created_at < $2
  AND balance_after - balance_before <> amount
ORDER BY created_at, id
LIMIT $3
"""

# Holds by their own timestamps (the service clock's): opened, committed and released in the month, and
# what was held at both instants (part of the outstanding credits, not a flow).
_HOLDS = """
SELECT
  count(*) FILTER (WHERE opened) AS opened,
  COALESCE(SUM(amount) FILTER (WHERE opened), 0)::bigint AS opened_credits,
  count(*) FILTER (WHERE resolved AND status = 'committed') AS committed,
  COALESCE(SUM(committed_amount) FILTER (WHERE resolved AND status = 'committed'), 0)::bigint
    AS committed_credits,
  count(*) FILTER (WHERE resolved AND status = 'refunded') AS released,
  COALESCE(SUM(amount) FILTER (WHERE resolved AND status = 'refunded'), 0)::bigint AS released_credits,
  COALESCE(SUM(amount) FILTER (WHERE held_at_opening), 0)::bigint AS reserved_at_opening,
  COALESCE(SUM(amount) FILTER (WHERE held_at_closing), 0)::bigint AS reserved_at_closing
FROM (
  SELECT amount, committed_amount, status::text AS status,
         created_at >= $1 AND created_at < $2 AS opened,
         resolved_at IS NOT NULL AND resolved_at >= $1 AND resolved_at < $2 AS resolved,
         created_at < $1 AND (resolved_at IS NULL OR resolved_at >= $1) AS held_at_opening,
         created_at < $2 AND (resolved_at IS NULL OR resolved_at >= $2) AS held_at_closing
  FROM credits.reservations
  WHERE created_at < $2 AND (resolved_at IS NULL OR resolved_at >= $1)
) r
"""


class FlowRow(msgspec.Struct, kw_only=True):
    kind: str
    detail: str
    inflow: bool
    count: int
    credits: int
    euro_cents: int | None


class Mismatch(msgspec.Struct, kw_only=True):
    user_id: str
    difference: int  # balance + reserved less the ledger's sum


class Outstanding(msgspec.Struct, kw_only=True):
    ledger_opening: int
    ledger_closing: int
    balances_opening: int
    balances_closing: int
    users_opening: int
    users_closing: int
    erased_in_month: int
    erased_in_month_credits: int
    erased_holding: int
    erased_holding_credits: int
    mismatched_users: int
    mismatches: list[Mismatch]


class BrokenRow(msgspec.Struct, kw_only=True):
    id: str
    user_id: str
    amount: int
    balance_before: int
    balance_after: int


async def roomy(conn: Conn) -> None:
    """Memory for this transaction's sorts and hashes: the month's rows are grouped in memory instead of
    spilling to disk (measured on 2M rows: the per-user sums 0.75 s to 0.55 s). Undone at commit."""
    await conn.execute("SET LOCAL work_mem = '64MB'")


async def flows(conn: Conn, start: datetime, end: datetime) -> list[FlowRow]:
    return [from_record(FlowRow, row) for row in await conn.fetch(_FLOWS, start, end)]


async def outstanding(conn: Conn, start: datetime, end: datetime, *, listed: int = 50) -> Outstanding:
    row = await conn.fetchrow(_OUTSTANDING, start, end, listed)
    assert row is not None
    listed_users = msgspec.json.decode(row["mismatches"], type=list[Mismatch])
    return from_record(Outstanding, row, mismatches=listed_users)


async def broken_rows(conn: Conn, start: datetime, end: datetime, *, listed: int = 50) -> list[BrokenRow]:
    rows = await conn.fetch(_BROKEN_ROWS, start, end, listed)
    return [from_record(BrokenRow, row) for row in rows]


async def holds(conn: Conn, start: datetime, end: datetime) -> Holds:
    row = await conn.fetchrow(_HOLDS, start, end)
    assert row is not None
    return from_record(Holds, row)


async def reserved_and_held(conn: Conn) -> tuple[int, int]:
    """The balances' `reserved` and the open holds, summed: the audit's check, for every account at once."""
    row = await conn.fetchrow(
        """
        SELECT (SELECT COALESCE(SUM(reserved), 0) FROM credits.balances)::bigint AS reserved,
               (SELECT COALESCE(SUM(amount), 0) FROM credits.reservations WHERE status = 'reserved')::bigint
                 AS held
        """
    )
    assert row is not None
    return int(row["reserved"]), int(row["held"])


# ---- the Stripe reconciliation's side: our purchases ----


# Our purchase as the reversal rule sees it (payments' own struct), with the returns it has booked.
_PURCHASE_COLUMNS = (
    "id, user_id, status::text AS status, credits, price_euro_cents, stripe_payment_intent_id, "
    "credits_reversed, amount_refunded, amount_disputed, 0 AS refund_failed"
)


async def credited_since(conn: Conn, since: datetime) -> list[PurchaseReturns]:
    """Purchases started since `since` that were credited: each must have been paid at Stripe."""
    rows = await conn.fetch(
        f"SELECT {_PURCHASE_COLUMNS} FROM credits.purchases "
        "WHERE created_at >= $1 AND status = 'completed' ORDER BY created_at, id",
        since,
    )
    return [from_record(PurchaseReturns, row) for row in rows]


async def purchase(conn: Conn, purchase_id: UUID) -> PurchaseReturns:
    row = await conn.fetchrow(f"SELECT {_PURCHASE_COLUMNS} FROM credits.purchases WHERE id = $1", purchase_id)
    assert row is not None
    return from_record(PurchaseReturns, row)
