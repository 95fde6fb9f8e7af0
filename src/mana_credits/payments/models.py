from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import asyncpg
import msgspec


class Package(msgspec.Struct, rename="camel", kw_only=True):
    id: UUID
    name: str
    description: str | None
    credits: int
    price_euro_cents: int
    active: bool
    sort_order: int

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Package:
        return cls(
            id=row["id"],
            name=row["name"],
            description=row["description"],
            credits=row["credits"],
            price_euro_cents=row["price_euro_cents"],
            active=row["active"],
            sort_order=row["sort_order"],
        )


class Purchase(msgspec.Struct, rename="camel", kw_only=True):
    id: UUID
    user_id: str
    package_id: UUID | None
    credits: int
    price_euro_cents: int
    status: str
    stripe_payment_intent_id: str | None
    created_at: datetime
    completed_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Purchase:
        return cls(
            id=row["id"],
            user_id=row["user_id"],
            package_id=row["package_id"],
            credits=row["credits"],
            price_euro_cents=row["price_euro_cents"],
            status=row["status"],
            stripe_payment_intent_id=row["stripe_payment_intent_id"],
            created_at=row["created_at"],
            completed_at=row["completed_at"],
        )


Url = Annotated[str, msgspec.Meta(min_length=8, max_length=2000, pattern=r"^https?://")]


class PurchaseRequest(msgspec.Struct, rename="camel", kw_only=True):
    package_id: Annotated[str, msgspec.Meta(max_length=100)]
    # With successUrl the purchase is paid through a Stripe Checkout Session (`checkoutUrl`).
    success_url: Url | None = None
    cancel_url: Url | None = None
