"""Gift flows. Each runs on a connection inside the caller's transaction: the gift's state change and
its ledger row commit together or not at all.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import asyncpg

from mana_credits import ledger
from mana_credits.auth.models import AuthUser
from mana_credits.db.pool import Conn
from mana_credits.gifts import codes, repository
from mana_credits.gifts.errors import (
    GiftAlreadyRedeemed,
    GiftCancelled,
    GiftExpired,
    GiftNotCancellable,
    GiftNotFound,
    GiftOwn,
    GiftWrongRecipient,
    Refused,
)
from mana_credits.gifts.schemas import (
    MAX_EXPIRATION_DAYS,
    CancelResult,
    CreateGift,
    Gift,
    GiftRow,
    GiftStatus,
    GiftType,
    PendingResult,
    RedeemResult,
    display_name,
    effective_status,
    short_url,
)
from mana_credits.kit.errors import ValidationFailed
from mana_credits.kit.validation import EMAIL
from mana_credits.ledger.schemas import TxType

log = logging.getLogger(__name__)

APP_ID = "gifts"
# With 32^8 codes a collision is rare; a few fresh draws make a failure practically impossible.
CODE_ATTEMPTS = 5
SWEEP_BATCH = 200

_EMAIL = re.compile(EMAIL)


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, details={"fields": [{"field": field, "message": message}]})


def _target_email(data: CreateGift) -> str | None:
    email = (data.target_email or "").strip(" \t\r\n") or None
    if data.type is GiftType.PERSONALIZED:
        if email is None:
            raise _invalid("targetEmail", "targetEmail is required for a personalized gift")
        if not _EMAIL.fullmatch(email):
            raise _invalid("targetEmail", "targetEmail is not a valid email address")
    elif email is not None:
        raise _invalid("targetEmail", "targetEmail is only allowed for a personalized gift")
    return email


DEFAULT_EXPIRATION_DAYS = 90


def _total_credits(data: CreateGift) -> int:
    """totalCredits, or the web app's `credits`; both given must agree."""
    if data.total_credits is not None and data.credits is not None and data.total_credits != data.credits:
        message = "credits (an alias of totalCredits) and totalCredits disagree; give one"
        raise ValidationFailed(
            message,
            details={"fields": [{"field": name, "message": message} for name in ("credits", "totalCredits")]},
        )
    total = data.total_credits if data.total_credits is not None else data.credits
    if total is None:
        raise _invalid("totalCredits", "totalCredits (or its alias credits) is required")
    return total


def _expires_at(data: CreateGift, now: datetime) -> datetime:
    """expirationDays from now, or the web app's `expiresAt`: an instant in the next 365 days."""
    if data.expires_at is None:
        return now + timedelta(days=data.expiration_days or DEFAULT_EXPIRATION_DAYS)
    if data.expiration_days is not None:
        raise _invalid("expiresAt", "expiresAt and expirationDays both set the expiry; give one")
    if not now < data.expires_at <= now + timedelta(days=MAX_EXPIRATION_DAYS):
        raise _invalid("expiresAt", f"expiresAt must lie in the next {MAX_EXPIRATION_DAYS} days")
    return data.expires_at


async def create(
    conn: Conn,
    *,
    user: AuthUser,
    data: CreateGift,
    base_url: str,
    code_length: int,
    now: datetime,
    idempotency_key: str | None,
) -> Gift:
    """Debit the creator and write the gift, in the caller's transaction."""
    total = _total_credits(data)
    expires_at = _expires_at(data, now)
    target_email = _target_email(data)
    message = (data.message or "").strip() or None
    gift_id = uuid4()
    entry = await ledger.debit(
        conn,
        user.id,
        total,
        type=TxType.GIFT,
        app_id=APP_ID,
        description=f"Gift of {total} credits",
        metadata={"giftCodeId": str(gift_id)},
        idempotency_key=idempotency_key,
    )
    for _ in range(CODE_ATTEMPTS):
        code = codes.generate(code_length)
        row = await repository.insert_gift(
            conn,
            gift_id=gift_id,
            code=code,
            short_url=short_url(base_url, code),
            creator_id=user.id,
            creator_name=data.creator_name or display_name(user.name or user.email),
            total_credits=total,
            type=data.type.value,
            target_email=target_email,
            message=message,
            expires_at=expires_at,
            transaction_id=entry.transaction.id,
        )
        if row is not None:
            return Gift.from_row(row, base_url=base_url, now=now)
    raise RuntimeError(f"no free gift code after {CODE_ATTEMPTS} draws")


def _refusal(gift: GiftRow, user: AuthUser, now: datetime, redeemed_by_user: bool) -> Refused:
    """Why a claim found nothing: the first reason that applies, most specific to the caller first."""
    gift_id = gift.id
    if gift.creator_id == user.id:
        return Refused(GiftOwn(), gift_id, "failed_wrong_user")
    status = effective_status(gift, now)
    if status is GiftStatus.DEPLETED and redeemed_by_user:
        error = GiftAlreadyRedeemed("You already redeemed this gift")
        return Refused(error, gift_id, "failed_already_claimed")
    # An adopted personalized gift may have no target: it is nobody's.
    mine = codes.fold_email(user.email) is not None and codes.fold_email(user.email) == codes.fold_email(
        gift.target_email
    )
    if gift.type == GiftType.PERSONALIZED and not mine:
        return Refused(GiftWrongRecipient(), gift_id, "failed_wrong_user")
    if status is GiftStatus.EXPIRED:
        return Refused(GiftExpired(), gift_id, "failed_expired")
    if status in (GiftStatus.CANCELLED, GiftStatus.REFUNDED):
        return Refused(GiftCancelled(), gift_id, "failed_depleted")
    # Depleted, or changed between our claim and this read (it can only have become unredeemable).
    return Refused(GiftAlreadyRedeemed(), gift_id, "failed_depleted")


async def redeem(
    conn: Conn,
    *,
    code: str | None,
    user: AuthUser,
    now: datetime,
    source_app_id: str | None,
    client_ip: str | None,
    idempotency_key: str | None,
) -> RedeemResult:
    """Claim the gift for `user` and credit them, or raise GiftNotFound / Refused."""
    email = codes.fold_email(user.email)
    gift = await repository.claim_for_redeem(conn, code, now, user.id, email) if code else None
    if gift is None:
        current = await repository.get_by_code(conn, code) if code else None
        if current is None:
            raise GiftNotFound()
        redeemed_by_user = await repository.has_redeemed(conn, current.id, user.id)
        raise _refusal(current, user, now, redeemed_by_user)
    balance = await _land(conn, gift, user.id, source_app_id, client_ip, idempotency_key)
    return RedeemResult(
        success=True,
        credits_received=gift.total_credits,
        message=gift.message,
        creator_name=display_name(gift.creator_name),
        credits=gift.total_credits,
        new_balance=balance,
    )


async def _land(
    conn: Conn,
    gift: GiftRow,
    user_id: str,
    source_app_id: str | None,
    client_ip: str | None,
    idempotency_key: str | None,
) -> int:
    """Credit a claimed gift to its redeemer and record the redemption; the redeemer's balance after."""
    sender = display_name(gift.creator_name) or "a friend"
    entry = await ledger.credit(
        conn,
        user_id,
        gift.total_credits,
        type=TxType.GIFT,
        app_id=APP_ID,
        description=f"Gift from {sender}",
        metadata={"giftCodeId": str(gift.id), "code": gift.code, "sourceAppId": source_app_id},
        idempotency_key=idempotency_key,
    )
    await repository.insert_redemption(
        conn,
        gift_id=gift.id,
        user_id=user_id,
        status="success",
        credits=gift.total_credits,
        transaction_id=entry.transaction.id,
        source_app_id=source_app_id,
        client_ip=client_ip,
    )
    return entry.balance


async def record_refusal(
    conn: Conn, refused: Refused, user_id: str, source_app_id: str | None, client_ip: str | None
) -> None:
    await repository.insert_redemption(
        conn,
        gift_id=refused.gift_id,
        user_id=user_id,
        status=refused.redemption_status,
        source_app_id=source_app_id,
        client_ip=client_ip,
    )


async def redeem_pending(
    conn: Conn, *, user_id: str, email: str, now: datetime, source_app_id: str
) -> PendingResult:
    """Redeem every active personalized gift for `email`; counts only the gifts this call took.

    Gift targets were checked against EMAIL when created, so a string that is no address (even one
    PostgreSQL could not compare, with a NUL) matches nothing: nothing to redeem, not an error."""
    folded = codes.fold_email(email)
    address = folded if folded and _EMAIL.fullmatch(folded.strip(" \t\r\n")) else None
    gifts = await repository.claim_pending(conn, address, now, user_id) if address else []
    for gift in gifts:
        await _land(conn, gift, user_id, source_app_id, None, None)
    return PendingResult(redeemed=len(gifts), total_credits=sum(gift.total_credits for gift in gifts))


_NOT_CANCELLABLE = {
    GiftStatus.DEPLETED: "This gift has already been redeemed",
    GiftStatus.CANCELLED: "This gift is already cancelled",
    GiftStatus.REFUNDED: "This gift is already cancelled",
    GiftStatus.EXPIRED: "This gift has expired and its credits were returned",
}


async def cancel(conn: Conn, *, gift_id: UUID, user: AuthUser, now: datetime) -> CancelResult:
    """Cancel the creator's active gift and give the credits back (ledger `refund`)."""
    gift = await repository.claim_cancel(conn, gift_id, user.id, now)
    if gift is None:
        current = await repository.get_by_id(conn, gift_id)
        # Someone else's gift is "not found": ids of other users' gifts are not confirmed.
        if current is None or current.creator_id != user.id:
            raise GiftNotFound()
        status = effective_status(current, now)
        raise GiftNotCancellable(_NOT_CANCELLABLE.get(status), details={"status": status.value})
    # A refund, as in the old service: a create/cancel cycle moves neither total.
    await ledger.credit(
        conn,
        user.id,
        gift.total_credits,
        type=TxType.REFUND,
        app_id=APP_ID,
        description="Gift cancelled: credits returned",
        metadata={"giftCodeId": str(gift.id), "code": gift.code},
    )
    return CancelResult(success=True, refunded_credits=gift.total_credits)


async def expire_batch(conn: Conn, now: datetime, limit: int = SWEEP_BATCH) -> tuple[int, list[GiftRow]]:
    """Lock up to `limit` expired active gifts and refund each creator (ledger `expiry`), each gift in its
    own savepoint: a gift whose refund fails (a damaged account) stays active for a later sweep instead of
    failing everybody's. A concurrent sweep skips the rows this one holds, so each gift is refunded once.
    Returns how many were claimed and the gifts that expired.
    """
    due = await repository.lock_expired(conn, now, limit)
    expired = []
    # Balances are locked in one global order (creator id), so concurrent sweeps cannot deadlock.
    for gift in sorted(due, key=lambda gift: (gift.creator_id, gift.id)):
        try:
            async with conn.transaction():
                await repository.mark_expired(conn, gift.id)
                await ledger.credit(
                    conn,
                    gift.creator_id,
                    gift.total_credits,
                    type=TxType.EXPIRY,
                    app_id=APP_ID,
                    description="Gift expired: credits returned",
                    metadata={"giftCodeId": str(gift.id), "code": gift.code},
                )
        except asyncpg.PostgresError:
            log.exception("could not refund expired gift %s; leaving it for a later sweep", gift.id)
            continue
        expired.append(gift)
    return len(due), expired
