"""Purchases: start one at Stripe, credit it exactly once, take credits back on refunds and disputes."""

from __future__ import annotations

import logging
from uuid import UUID

from mana_credits import ledger
from mana_credits.auth.models import AuthUser
from mana_credits.context import AppContext
from mana_credits.db.pool import Conn
from mana_credits.kit.errors import NotFound
from mana_credits.kit.validation import parse_uuid
from mana_credits.ledger.schemas import TxType
from mana_credits.payments import repository, return_urls
from mana_credits.payments.schemas import Package, Purchase, PurchaseRequest, PurchaseReturns, PurchaseStarted
from mana_credits.payments.stripe_client import CURRENCY, StripeGateway

log = logging.getLogger("mana_credits.payments")

APP_ID = "mana-credits"


async def customer_for(ctx: AppContext, stripe: StripeGateway, user: AuthUser) -> str:
    """One Stripe customer per user: a per-user DB lock here, an idempotency key at Stripe."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        existing = await repository.lock_customer(conn, user.id)
        if existing:
            return existing
        customer_id = await stripe.create_customer(user.id, user.email, user.name)
        await repository.save_customer(conn, user.id, customer_id, user.email)
        return customer_id


async def purchasable(ctx: AppContext, data: PurchaseRequest) -> Package:
    """The active package a purchase request names, after checking its return URLs."""
    package_id = parse_uuid(data.package_id, "packageId")
    allowed = return_urls.allowed_origins(ctx.settings)
    return_urls.check(data.success_url, "successUrl", allowed)
    return_urls.check(data.cancel_url, "cancelUrl", allowed)
    async with ctx.pool.acquire() as conn:
        package = await repository.active_package(conn, package_id)
    if package is None:
        raise NotFound("Package not found")
    return package


def _with_id(url: str, purchase_id: UUID) -> str:
    """Return URLs may name their purchase with `{PURCHASE_ID}` (like Stripe's `{CHECKOUT_SESSION_ID}`)."""
    return url.replace("{PURCHASE_ID}", str(purchase_id))


async def open_purchase(
    conn: Conn,
    stripe: StripeGateway,
    user: AuthUser,
    package: Package,
    customer_id: str,
    data: PurchaseRequest,
) -> PurchaseStarted:
    """A pending purchase plus its PaymentIntent (or Checkout Session), in the caller's transaction.

    The purchase row commits only after Stripe answered: when Stripe fails (502) nothing is left that a
    later event could credit, and the payer never saw a secret or URL to pay with.
    """
    purchase = await repository.insert_purchase(conn, user.id, package, customer_id)
    metadata = {"userId": user.id, "packageId": str(package.id), "purchaseId": str(purchase.id)}
    if data.success_url:
        payment = await stripe.create_checkout_session(
            purchase_id=purchase.id,
            amount=package.price_euro_cents,
            product_name=package.name,
            customer_id=customer_id,
            metadata=metadata,
            success_url=_with_id(data.success_url, purchase.id),
            cancel_url=data.cancel_url and _with_id(data.cancel_url, purchase.id),
        )
    else:
        payment = await stripe.create_payment_intent(
            purchase_id=purchase.id,
            amount=package.price_euro_cents,
            customer_id=customer_id,
            metadata=metadata,
        )
    await repository.attach_payment(conn, purchase.id, payment.payment_intent_id, payment.checkout_session_id)
    return PurchaseStarted(
        purchase_id=purchase.id,
        client_secret=payment.client_secret,
        amount=package.price_euro_cents,
        credits=package.credits,
        checkout_url=payment.checkout_url or None,
    )


async def credit(
    conn: Conn,
    purchase: Purchase,
    *,
    paid: int,
    currency: str,
    payment_intent_id: str | None,
    event_id: str,
) -> bool:
    """Credit the purchase once, and only when Stripe was paid its exact price in euro."""
    if currency.lower() != CURRENCY or paid != purchase.price_euro_cents:
        log.warning(
            "purchase %s not credited: paid %s %s, price %s %s (event %s)",
            purchase.id,
            paid,
            currency,
            purchase.price_euro_cents,
            CURRENCY,
            event_id,
        )
        return False
    if payment_intent_id:
        await repository.lock_payment_intent(conn, payment_intent_id)
    claimed = await repository.claim_for_credit(conn, purchase.id, paid, payment_intent_id)
    if claimed is None:
        log.info("purchase %s already completed (event %s)", purchase.id, event_id)
        return False
    name = (claimed.metadata or {}).get("packageName")
    await ledger.credit(
        conn,
        claimed.user_id,
        claimed.credits,
        type=TxType.PURCHASE,
        app_id=APP_ID,
        description=f"Purchase of {claimed.credits} credits" + (f" ({name})" if name else ""),
        metadata={
            "purchaseId": str(claimed.id),
            "paymentIntentId": claimed.stripe_payment_intent_id,
            "stripeEventId": event_id,
        },
    )
    # Money returned before the payment was recorded (on the purchase, or still unmatched for a Checkout
    # purchase's PaymentIntent): take its credits back now.
    intent = claimed.stripe_payment_intent_id
    refunded = await repository.take_unmatched_return(conn, intent) if intent else 0
    await take_back_returned(conn, claimed.id, refunded=refunded, event_id=event_id)
    return True


async def fail(conn: Conn, purchase: Purchase, event_id: str) -> bool:
    failed = await repository.mark_failed(conn, purchase.id)
    log.info("purchase %s failed=%s (event %s)", purchase.id, failed, event_id)
    return failed


async def take_back_returned(conn: Conn, purchase_id: UUID, *, refunded: int = 0, event_id: str) -> int:
    """Make the reversed credits match the money returned now: refunds (less the failed ones) and
    disputes that are chargebacks, proportionally, rounded down. Only the difference moves, so repeated
    events change nothing and a won dispute or a failed refund gives the credits back."""
    row = await repository.record_returned_money(conn, purchase_id, refunded)
    return await _reconcile(conn, row, event_id)


def reversal_target(price: int, credits: int, refunded: int, refund_failed: int, disputed: int) -> int:
    """The credits a purchase must have reversed for the money returned: refunds (less the failed ones) and
    disputes that are chargebacks, proportionally, rounded down (books/reconcile.py asks the same)."""
    returned = min(price, max(0, refunded - refund_failed) + disputed)
    return credits * returned // price


async def _reconcile(conn: Conn, row: PurchaseReturns, event_id: str) -> int:
    """Move credits so that the reversed part matches the money returned; returns the credits taken
    (negative when given back)."""
    if row.status != "completed":
        return 0
    purchase_id = row.id
    credits = row.credits
    target = reversal_target(row.price_euro_cents, credits, row.amount_refunded, row.refund_failed,
                             row.amount_disputed)  # fmt: skip
    delta = target - row.credits_reversed
    if delta == 0:
        return 0
    await repository.set_credits_reversed(conn, purchase_id, target)
    metadata = {
        "purchaseId": str(purchase_id), "paymentIntentId": row.stripe_payment_intent_id,
        "stripeEventId": event_id, "amountRefunded": row.amount_refunded,
        "amountDisputed": row.amount_disputed, "amountRefundFailed": row.refund_failed,
    }  # fmt: skip
    if delta > 0:
        await ledger.take_back(
            conn,
            row.user_id,
            delta,
            app_id=APP_ID,
            metadata=metadata,
            description=f"Stripe refund/dispute: {delta} of {credits} purchased credits taken back",
        )
    else:
        await ledger.credit(
            conn,
            row.user_id,
            -delta,
            type=TxType.REVERSAL,
            app_id=APP_ID,
            metadata=metadata,
            description=f"Stripe dispute or refund undone: {-delta} purchased credits restored",
        )
    log.info("purchase %s: %s credits reversed (event %s)", purchase_id, delta, event_id)
    return delta
