"""Wire types of payments: packages, purchases, the purchase request and its answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import asyncpg
import msgspec

from mana_credits.kit.records import from_record


class Package(msgspec.Struct, rename="camel", kw_only=True):
    id: UUID
    name: str
    description: str | None
    credits: int
    price_euro_cents: int
    active: bool
    sort_order: int
    stripe_price_id: str | None
    metadata: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Package:
        return from_record(cls, row)


class Purchase(msgspec.Struct, rename="camel", kw_only=True):
    id: UUID
    user_id: str
    package_id: UUID | None
    credits: int
    price_euro_cents: int
    status: str
    stripe_payment_intent_id: str | None
    stripe_customer_id: str | None
    metadata: dict[str, Any] | None
    created_at: datetime
    completed_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Purchase:
        return from_record(cls, row)


class PurchaseReturns(msgspec.Struct, frozen=True, kw_only=True):
    """A completed purchase with the money Stripe returned on it (not on the wire): what decides how many
    of its credits are taken back."""

    id: UUID
    user_id: str
    status: str
    credits: int
    price_euro_cents: int
    stripe_payment_intent_id: str | None
    credits_reversed: int
    amount_refunded: int
    amount_disputed: int
    # What refunds that failed or were cancelled gave back.
    refund_failed: int


Url = Annotated[str, msgspec.Meta(min_length=8, max_length=2000, pattern=r"^https?://")]


class PurchaseRequest(msgspec.Struct, rename="camel", kw_only=True):
    package_id: Annotated[str, msgspec.Meta(max_length=100)]
    # With successUrl the purchase is paid through a Stripe Checkout Session (`checkoutUrl`).
    success_url: Url | None = None
    cancel_url: Url | None = None


class PurchaseStarted(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    purchase_id: UUID
    # Null with Checkout: the session makes its own PaymentIntent, and a second payable object for the same
    # purchase could be paid twice.
    client_secret: str | None
    amount: int
    credits: int
    # Only with Checkout (absent, not null, without it).
    checkout_url: str | None = None


class Received(msgspec.Struct):
    """The webhook's answer to Stripe."""

    received: bool
