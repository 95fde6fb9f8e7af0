"""The ledger invariant (ledger/__init__.py), checkable at any time, per batch of users:

balance + reserved = Σ amount of completed transactions
total_earned       = Σ positive amounts except refunds and expiries, minus reversals
total_spent        = −Σ negative amounts except reversals, minus refunds and expiries
reserved           = Σ open holds

and gift conservation, per gift: the credits its creator's ledger row took = those redeemed + those
returned (cancel, expiry) + those still held (an active gift holds them all).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

import msgspec

from mana_credits.db.pool import Conn
from mana_credits.ledger.accrual import AccrualOffender, audit_accruals

BATCH = 2000

_CHECK = """
WITH users AS (
  SELECT user_id FROM credits.balances WHERE user_id > $1 ORDER BY user_id LIMIT $2
), ledger AS (
  SELECT t.user_id,
         SUM(t.amount) AS total,
         SUM(CASE WHEN t.type = 'reversal' THEN t.amount WHEN t.type IN ('refund', 'expiry') THEN 0
                  ELSE GREATEST(t.amount, 0) END) AS earned,
         SUM(CASE WHEN t.type IN ('refund', 'expiry') THEN -t.amount WHEN t.type = 'reversal' THEN 0
                  ELSE GREATEST(-t.amount, 0) END) AS spent
  FROM credits.transactions t JOIN users u USING (user_id)
  WHERE t.status = 'completed'
  GROUP BY t.user_id
), holds AS (
  SELECT r.user_id, SUM(r.amount) AS held
  FROM credits.reservations r JOIN users u USING (user_id)
  WHERE r.status = 'reserved'
  GROUP BY r.user_id
)
SELECT b.user_id, b.balance, b.reserved, b.total_earned, b.total_spent,
       COALESCE(l.total, 0) AS ledger_total, COALESCE(l.earned, 0) AS ledger_earned,
       COALESCE(l.spent, 0) AS ledger_spent, COALESCE(h.held, 0) AS held
FROM users u
JOIN credits.balances b USING (user_id)
LEFT JOIN ledger l USING (user_id)
LEFT JOIN holds h USING (user_id)
ORDER BY b.user_id
"""


class Offender(msgspec.Struct, kw_only=True):
    user_id: str
    balance: int
    reserved: int
    total_earned: int
    total_spent: int
    ledger_total: int
    ledger_earned: int
    ledger_spent: int
    held: int

    @property
    def problems(self) -> list[str]:
        found = []
        if self.balance + self.reserved != self.ledger_total:
            found.append(f"balance+reserved {self.balance + self.reserved} != ledger {self.ledger_total}")
        if self.total_earned != self.ledger_earned:
            found.append(f"totalEarned {self.total_earned} != ledger {self.ledger_earned}")
        if self.total_spent != self.ledger_spent:
            found.append(f"totalSpent {self.total_spent} != ledger {self.ledger_spent}")
        if self.reserved != self.held:
            found.append(f"reserved {self.reserved} != open holds {self.held}")
        return found


# Gifts the ledger knows (their reservation row carries giftCodeId); adopted ones without it are not judged.
_GIFTS = """
WITH moved AS (
  SELECT (t.metadata->>'giftCodeId')::uuid AS gift_id,
         -SUM(t.amount) FILTER (WHERE t.type = 'gift' AND t.amount < 0) AS reserved,
         SUM(t.amount) FILTER (WHERE t.type = 'gift' AND t.amount > 0) AS redeemed,
         SUM(t.amount) FILTER (WHERE t.type IN ('refund', 'expiry')) AS returned
  FROM credits.transactions t
  WHERE t.metadata ? 'giftCodeId' AND t.status = 'completed'
  GROUP BY 1
)
SELECT g.id AS gift_id, g.creator_id AS user_id, g.total_credits, g.status::text AS status,
       COALESCE(m.reserved, 0) AS reserved, COALESCE(m.redeemed, 0) AS redeemed,
       COALESCE(m.returned, 0) AS returned
FROM gifts.gift_codes g JOIN moved m ON m.gift_id = g.id
WHERE m.reserved IS NOT NULL
"""


class GiftOffender(msgspec.Struct, kw_only=True):
    gift_id: UUID
    user_id: str  # its creator
    total_credits: int
    status: str
    reserved: int
    redeemed: int
    returned: int

    @property
    def problems(self) -> list[str]:
        held = self.total_credits if self.status == "active" else 0
        if self.reserved == self.total_credits and self.reserved == self.redeemed + self.returned + held:
            return []
        return [
            f"gift {self.gift_id} ({self.status}, {self.total_credits} credits): reserved {self.reserved} != "
            f"redeemed {self.redeemed} + returned {self.returned} + held {held}"
        ]


async def audit_gifts(conn: Conn) -> list[GiftOffender]:
    """The gifts whose credits are not conserved."""
    checked = [GiftOffender(**dict(row)) for row in await conn.fetch(_GIFTS)]
    return [gift for gift in checked if gift.problems]


async def count_users(conn: Conn) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM credits.balances"))


async def audit_batches(conn: Conn, batch: int = BATCH) -> AsyncIterator[tuple[int, list[Offender]]]:
    """Yield (users checked in this batch, offenders in it) until every balance row was checked."""
    last = ""
    while True:
        rows = await conn.fetch(_CHECK, last, batch)
        if not rows:
            return
        last = rows[-1]["user_id"]
        checked = [Offender(**dict(row)) for row in rows]
        yield len(rows), [item for item in checked if item.problems]


async def audit(conn: Conn) -> list[Offender | GiftOffender | AccrualOffender]:
    """Every account, gift and accrual that breaks the invariant (none: the ledger is consistent)."""
    offenders: list[Offender | GiftOffender | AccrualOffender] = []
    async for _, found in audit_batches(conn):
        offenders.extend(found)
    return [*offenders, *await audit_gifts(conn), *await audit_accruals(conn)]
