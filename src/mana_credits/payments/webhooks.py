"""Stripe webhook intake: verify the signature on the raw body, then act on the event once.

The signature is Stripe's scheme (`Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`) with
a 300 s tolerance, checked against the injected clock. The event id is stored in the same transaction
as its effect, so a duplicate delivery waits for the first and then does nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

import msgspec

from mana_credits.db.pool import Conn
from mana_credits.kit.errors import ValidationFailed
from mana_credits.payments import repository, service
from mana_credits.payments.errors import InvalidSignature
from mana_credits.payments.schemas import Purchase

log = logging.getLogger("mana_credits.payments.webhooks")

TOLERANCE_SECONDS = 300

T = TypeVar("T")


def verify_signature(payload: bytes, header: str | None, secret: str, now: int) -> None:
    if not header:
        raise InvalidSignature()
    timestamp: str | None = None
    signatures: list[str] = []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            timestamp = value
        elif name == "v1":
            signatures.append(value)
    if timestamp is None or not (timestamp.isascii() and timestamp.isdigit()) or not signatures:
        raise InvalidSignature()
    expected = (
        hmac.new(secret.encode(), timestamp.encode() + b"." + payload, hashlib.sha256).hexdigest().encode()
    )
    # Check every v1 signature (Stripe sends several while a secret is being rolled); as bytes, since
    # a header may carry any character.
    if not any([hmac.compare_digest(expected, given.encode("utf-8", "replace")) for given in signatures]):
        raise InvalidSignature()
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        raise InvalidSignature("Stripe-Signature timestamp outside the tolerance")


class EventData(msgspec.Struct):
    object: dict[str, Any]


class Event(msgspec.Struct):
    id: str
    type: str
    data: EventData
    created: int | None = None  # Unix seconds at Stripe: how late the event arrived (a metric)


class PaymentIntentObject(msgspec.Struct):
    id: str
    amount: int
    currency: str
    amount_received: int | None = None
    metadata: dict[str, str] = {}


class CheckoutSessionObject(msgspec.Struct):
    id: str
    payment_status: str
    amount_total: int | None = None
    currency: str | None = None
    payment_intent: str | None = None
    client_reference_id: str | None = None
    metadata: dict[str, str] = {}


class ChargeObject(msgspec.Struct):
    id: str
    amount_refunded: int
    payment_intent: str | None = None


class ReturnObject(msgspec.Struct):
    """A dispute or a refund: both carry their PaymentIntent, amount and status."""

    id: str
    amount: int
    status: str
    payment_intent: str | None = None


def decode_event(payload: bytes) -> Event:
    try:
        return msgspec.json.decode(payload, type=Event)
    except msgspec.MsgspecError as exc:
        raise ValidationFailed(f"Not a Stripe event: {exc}") from exc


def _object(event: Event, type_: type[T]) -> T:
    try:
        return msgspec.convert(event.data.object, type_)
    except msgspec.ValidationError as exc:
        # A 400 rolls the event id back, so Stripe's retry is processed once this is understood.
        raise ValidationFailed(f"Unexpected {event.type} payload: {exc}") from exc


def _uuid(value: str | None) -> UUID | None:
    try:
        return UUID(value) if value else None
    except ValueError:
        return None


async def _purchase(
    conn: Conn,
    event: Event,
    metadata: dict[str, str],
    *,
    payment_intent: str | None = None,
    checkout_session: str | None = None,
    reference: str | None = None,
) -> Purchase | None:
    purchase = await repository.find_purchase(
        conn,
        payment_intent_id=payment_intent,
        checkout_session_id=checkout_session,
        purchase_id=_uuid(metadata.get("purchaseId") or reference),
    )
    if purchase is None:
        log.info("%s %s: no purchase of ours", event.type, event.id)
        return None
    user_id = metadata.get("userId")
    if user_id is not None and user_id != purchase.user_id:
        log.error("%s %s: metadata user %s is not the purchase's user", event.type, event.id, user_id)
        return None
    known = purchase.stripe_payment_intent_id
    if payment_intent and known and known != payment_intent:
        log.error("%s %s: purchase %s belongs to %s", event.type, event.id, purchase.id, known)
        return None
    return purchase


async def _payment_intent(conn: Conn, event: Event, succeeded: bool) -> None:
    intent = _object(event, PaymentIntentObject)
    purchase = await _purchase(conn, event, intent.metadata, payment_intent=intent.id)
    if purchase is None:
        return
    if not succeeded:
        await service.fail(conn, purchase, event.id)
        return
    paid = intent.amount_received if intent.amount_received is not None else intent.amount
    await service.credit(
        conn, purchase, paid=paid, currency=intent.currency, payment_intent_id=intent.id, event_id=event.id
    )


async def _checkout_session(conn: Conn, event: Event, succeeded: bool) -> None:
    session = _object(event, CheckoutSessionObject)
    purchase = await _purchase(
        conn,
        event,
        session.metadata,
        payment_intent=session.payment_intent,
        checkout_session=session.id,
        reference=session.client_reference_id,
    )
    if purchase is None:
        return
    if not succeeded:
        await service.fail(conn, purchase, event.id)
    elif session.payment_status != "paid":
        # Completed but not paid yet (SEPA): async_payment_succeeded or _failed follows.
        log.info("checkout session %s completed, payment %s", session.id, session.payment_status)
    else:
        await service.credit(
            conn,
            purchase,
            paid=session.amount_total or 0,
            currency=session.currency or "",
            payment_intent_id=session.payment_intent,
            event_id=event.id,
        )


async def _match(conn: Conn, event: Event, payment_intent: str) -> Purchase | None:
    await repository.lock_payment_intent(conn, payment_intent)
    purchase = await _purchase(conn, event, {}, payment_intent=payment_intent)
    if purchase is None:
        # Perhaps a Checkout purchase not paid yet: applied when its payment is matched (service.credit).
        log.warning("%s %s: no purchase for payment intent %s yet", event.type, event.id, payment_intent)
    return purchase


async def _charge_refunded(conn: Conn, event: Event) -> None:
    charge = _object(event, ChargeObject)
    if not charge.payment_intent:
        log.warning("%s %s: no payment intent to match", event.type, event.id)
        return
    purchase = await _match(conn, event, charge.payment_intent)
    if purchase is None:
        await repository.remember_unmatched_return(conn, charge.payment_intent, charge.amount_refunded)
        return
    await service.take_back_returned(conn, purchase.id, refunded=charge.amount_refunded, event_id=event.id)


async def _return_changed(conn: Conn, event: Event, kind: str) -> None:
    """A dispute or refund changed: store its status, then let the credits follow the new state."""
    item = _object(event, ReturnObject)
    if not item.payment_intent:
        log.warning("%s %s: no payment intent to match", event.type, event.id)
        return
    purchase = await _match(conn, event, item.payment_intent)
    await repository.record_return(
        conn,
        return_id=item.id,
        kind=kind,
        payment_intent_id=item.payment_intent,
        amount=item.amount,
        status=item.status,
    )
    if purchase is not None:
        await service.take_back_returned(conn, purchase.id, event_id=event.id)


def _dispute(conn: Conn, event: Event) -> Awaitable[None]:
    return _return_changed(conn, event, "dispute")


def _refund(conn: Conn, event: Event) -> Awaitable[None]:
    return _return_changed(conn, event, "refund")


HANDLERS: dict[str, Callable[[Conn, Event], Awaitable[None]]] = {
    "payment_intent.succeeded": lambda conn, event: _payment_intent(conn, event, True),
    "payment_intent.payment_failed": lambda conn, event: _payment_intent(conn, event, False),
    "payment_intent.canceled": lambda conn, event: _payment_intent(conn, event, False),
    "checkout.session.completed": lambda conn, event: _checkout_session(conn, event, True),
    "checkout.session.async_payment_succeeded": lambda conn, event: _checkout_session(conn, event, True),
    "checkout.session.async_payment_failed": lambda conn, event: _checkout_session(conn, event, False),
    "checkout.session.expired": lambda conn, event: _checkout_session(conn, event, False),
    "charge.refunded": _charge_refunded,
    # Stripe's dispute statuses decide (repository.DISPUTE_TAKES), not which event announced them.
    "charge.dispute.created": _dispute,
    "charge.dispute.updated": _dispute,
    "charge.dispute.closed": _dispute,
    "charge.dispute.funds_withdrawn": _dispute,
    "charge.dispute.funds_reinstated": _dispute,
    "charge.refund.updated": _refund,
    "refund.created": _refund,
    "refund.updated": _refund,
    "refund.failed": _refund,
}


async def process(conn: Conn, event: Event) -> bool:
    """Store the event id and act on it, in the caller's transaction; a duplicate does nothing (False)."""
    if not await repository.record_event(conn, event.id, event.type):
        log.info("stripe event %s (%s) already processed", event.id, event.type)
        return False
    handler = HANDLERS.get(event.type)
    if handler is not None:
        await handler(conn, event)
    return True
