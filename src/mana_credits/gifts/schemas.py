"""Request bodies and the gift JSON the old service answered (camelCase).

Aliases for the web app's gift module (apps/mana/apps/web/src/lib/api/gifts.ts), which never matched the
old service: a gift is created with `credits` (= `totalCredits`) and `expiresAt` (instead of
`expirationDays`); answers carry `url` (= `shortUrl`), `isPersonalized`, the redeem's `credits` (=
`creditsReceived`) and `newBalance`, a received gift's `credits` and `redeemedAt` (= `createdAt`) beside
the old names. Two spellings given together must agree (gifts.service).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

import asyncpg
import msgspec

from mana_credits.kit.records import from_record, from_struct
from mana_credits.kit.validation import UserId

Credits = Annotated[int, msgspec.Meta(ge=1, le=10_000)]
Email = Annotated[str, msgspec.Meta(max_length=254)]
Message = Annotated[str, msgspec.Meta(max_length=500)]
Days = Annotated[int, msgspec.Meta(ge=1, le=365)]
MAX_EXPIRATION_DAYS = 365
Moment = Annotated[datetime, msgspec.Meta(tz=True)]
AppId = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
DisplayName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class GiftType(StrEnum):
    SIMPLE = "simple"
    PERSONALIZED = "personalized"


class GiftStatus(StrEnum):
    ACTIVE = "active"
    DEPLETED = "depleted"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


class CreateGift(msgspec.Struct, rename="camel", kw_only=True):
    # One of totalCredits or its alias credits is required; both must agree.
    total_credits: Credits | None = None
    credits: Credits | None = None
    type: GiftType = GiftType.SIMPLE
    target_email: Email | None = None
    message: Message | None = None
    # Default 90 days; or expiresAt (the web app's spelling: an instant within 365 days), not both.
    expiration_days: Days | None = None
    expires_at: Moment | None = None
    # How the gift names its sender to the redeemer; default: the part of the creator's email before '@'.
    creator_name: DisplayName | None = None
    idempotency_key: Key | None = None


class RedeemGift(msgspec.Struct, rename="camel", kw_only=True):
    source_app_id: AppId | None = None
    idempotency_key: Key | None = None


class RedeemPending(msgspec.Struct, rename="camel", kw_only=True):
    user_id: UserId
    email: Email
    # mana-auth may say the address is not verified yet: then it claims nothing.
    email_verified: bool | None = None


def display_name(stored: str | None) -> str | None:
    """A sender name safe to show anyone: the old service stored the creator's email address as the name,
    so an address is cut to the part before '@'."""
    if stored is None:
        return None
    name = stored.split("@", 1)[0].strip() if "@" in stored else stored.strip()
    return name or None


class GiftRow(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    """A gift as stored (gifts.gift_codes); `Gift` and `PublicGift` are what the API shows of it (camelCase
    is for `Gift`, which shows every column)."""

    id: UUID
    code: str
    short_url: str | None
    creator_id: str
    # As given at creation; the old service stored the creator's email address here (see display_name).
    creator_name: str | None
    total_credits: int
    redeemed: int
    type: str
    status: str
    target_email: str | None
    message: str | None
    expires_at: datetime | None
    # The creator's debit in the ledger (the old service's name for it).
    reservation_transaction_id: UUID | None
    created_at: datetime
    updated_at: datetime


def effective_status(gift: GiftRow, now: datetime) -> GiftStatus:
    """An active gift past its expiry is expired even before the sweep has refunded it."""
    status = GiftStatus(gift.status)
    expires_at = gift.expires_at
    if status is GiftStatus.ACTIVE and expires_at is not None and expires_at <= now:
        return GiftStatus.EXPIRED
    return status


class Gift(GiftRow, frozen=True, kw_only=True):
    """A gift as its creator sees it: always a short URL, a sender name safe to show, expiry applied."""

    short_url: str
    url: str  # alias of shortUrl (the web app)

    @classmethod
    def from_row(cls, gift: GiftRow, *, base_url: str, now: datetime) -> Gift:
        link = gift.short_url or short_url(base_url, gift.code)
        return from_struct(
            cls,
            gift,
            short_url=link,
            url=link,
            status=effective_status(gift, now).value,
            creator_name=display_name(gift.creator_name),
        )


class PublicGift(msgspec.Struct, rename="camel", kw_only=True):
    """What anyone holding the code may see: never an email."""

    code: str
    type: str
    status: str
    total_credits: int
    redeemed: bool
    message: str | None
    creator_name: str | None
    expires_at: datetime | None
    is_personalized: bool  # type == "personalized" (the web app)

    @classmethod
    def from_row(cls, gift: GiftRow, *, now: datetime) -> PublicGift:
        return from_struct(
            cls,
            gift,
            status=effective_status(gift, now).value,
            redeemed=gift.redeemed > 0,
            is_personalized=gift.type == GiftType.PERSONALIZED,
            creator_name=display_name(gift.creator_name),
        )


class Redemption(msgspec.Struct, rename="camel", kw_only=True):
    id: UUID
    gift_code_id: UUID
    code: str
    credits_received: int
    creator_name: str | None
    message: str | None
    status: str
    source_app_id: str | None
    credit_transaction_id: UUID | None
    created_at: datetime
    credits: int  # alias of creditsReceived (the web app)
    redeemed_at: datetime  # alias of createdAt (the web app)

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Redemption:
        return from_record(
            cls,
            row,
            creator_name=display_name(row["creator_name"]),
            credits=row["credits_received"],
            redeemed_at=row["created_at"],
        )


class RedeemResult(msgspec.Struct, rename="camel", kw_only=True):
    success: bool
    credits_received: int
    # The creator's personal message to the redeemer (null when they wrote none), as the old service.
    message: str | None
    creator_name: str | None
    credits: int  # alias of creditsReceived (the web app)
    new_balance: int  # the redeemer's balance afterwards (the web app)


class CancelResult(msgspec.Struct, rename="camel", kw_only=True):
    success: bool
    refunded_credits: int


class PendingResult(msgspec.Struct, rename="camel", kw_only=True):
    redeemed: int
    total_credits: int


class SweepResult(msgspec.Struct, rename="camel", kw_only=True):
    expired: int
    refunded_credits: int


def short_url(base_url: str, code: str) -> str:
    return f"{base_url.rstrip('/')}/g/{code}"
