"""SQL for packages and purchases."""

from __future__ import annotations

from uuid import UUID

from mana_credits.db.pool import Conn
from mana_credits.payments.models import Package, Purchase

# The default set shipped with the service (SPEC §8); operators edit packages as data afterwards.
DEFAULT_PACKAGES = [
    ("Starter", "100 credits", 100, 100, 1),
    ("Basic", "500 credits", 500, 500, 2),
    ("Plus", "1,000 credits — 10 % off", 1000, 900, 3),
    ("Pro", "2,500 credits — 20 % off", 2500, 2000, 4),
]


async def active_packages(conn: Conn) -> list[Package]:
    rows = await conn.fetch(
        "SELECT * FROM credits.packages WHERE active ORDER BY sort_order, price_euro_cents"
    )
    return [Package.from_row(row) for row in rows]


async def seed_default_packages(conn: Conn) -> int:
    """Insert the default packages that do not exist yet (by name); returns how many were added."""
    added = 0
    for name, description, credits, price, order in DEFAULT_PACKAGES:
        status = await conn.execute(
            """
            INSERT INTO credits.packages (name, description, credits, price_euro_cents, sort_order)
            VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING
            """,
            name,
            description,
            credits,
            price,
            order,
        )
        added += int(status.rsplit(" ", 1)[-1])
    return added


async def user_purchases(conn: Conn, user_id: str) -> list[Purchase]:
    rows = await conn.fetch(
        "SELECT * FROM credits.purchases WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT 500",
        user_id,
    )
    return [Purchase.from_row(row) for row in rows]


async def user_purchase(conn: Conn, user_id: str, purchase_id: UUID) -> Purchase | None:
    row = await conn.fetchrow(
        "SELECT * FROM credits.purchases WHERE id = $1 AND user_id = $2", purchase_id, user_id
    )
    return Purchase.from_row(row) if row else None
