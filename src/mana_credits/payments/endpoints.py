"""Routes: packages (public), purchases (JWT), the Stripe webhook (signed by Stripe)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router, get, post

from mana_credits.auth.dependencies import USER
from mana_credits.auth.models import AuthUser
from mana_credits.context import AppContext
from mana_credits.db.pool import Conn
from mana_credits.kit import money_metrics
from mana_credits.kit.errors import NotFound
from mana_credits.kit.idempotency import Idempotent
from mana_credits.kit.openapi import raises
from mana_credits.kit.validation import parse_uuid
from mana_credits.payments import repository, service, webhooks
from mana_credits.payments.errors import InvalidSignature, PaymentProviderError, PaymentsUnavailable
from mana_credits.payments.schemas import Package, Purchase, PurchaseRequest, PurchaseStarted, Received
from mana_credits.payments.stripe_client import gateway


@get("/packages")
async def packages(ctx: AppContext) -> list[Package]:
    async with ctx.pool.acquire() as conn:
        return await repository.active_packages(conn)


@get("/purchases")
async def my_purchases(ctx: AppContext, user: AuthUser) -> list[Purchase]:
    async with ctx.pool.acquire() as conn:
        return await repository.user_purchases(conn, user.id)


@get("/purchase/{purchase_id:str}", responses=raises(NotFound))
async def my_purchase(ctx: AppContext, user: AuthUser, purchase_id: str) -> Purchase:
    async with ctx.pool.acquire() as conn:
        purchase = await repository.user_purchase(conn, user.id, parse_uuid(purchase_id, "id"))
    if purchase is None:
        raise NotFound("Purchase not found")
    return purchase


@post("/purchase", status_code=200, responses=raises(NotFound, PaymentProviderError))
async def purchase(
    ctx: AppContext, user: AuthUser, data: PurchaseRequest, idem: Idempotent
) -> Response[PurchaseStarted]:
    stripe = gateway(ctx)
    package = await service.purchasable(ctx, data)
    async with stripe.purchase_slots:
        customer_id = await service.customer_for(ctx, stripe, user)

        async def work(conn: Conn) -> PurchaseStarted:
            return await service.open_purchase(conn, stripe, user, package, customer_id, data)

        return await idem.run("payments.purchase", data, work)


# Stripe's events are far below this (a checkout session with 50 metadata keys of 500 characters is ~35 KB),
# but they are Stripe's to size: refusing one would lose a payment.
@post("/stripe", status_code=200, request_max_body_size=1024 * 1024)
async def stripe_webhook(ctx: AppContext, request: Request[Any, Any, Any]) -> Received:
    secret = ctx.settings.STRIPE_WEBHOOK_SECRET
    if not request.headers.get("stripe-signature"):
        raise InvalidSignature()  # not from Stripe, whatever this server's configuration
    if not secret:
        raise PaymentsUnavailable("Stripe webhooks are not configured on this server")
    payload = await request.body()
    webhooks.verify_signature(
        payload, request.headers.get("stripe-signature"), secret, now=int(ctx.clock.now().timestamp())
    )
    event = webhooks.decode_event(payload)
    now = ctx.clock.now().timestamp()
    if event.created:
        money_metrics.WEBHOOK_LAG.observe(max(now - event.created, 0))
    try:
        async with ctx.pool.acquire() as conn, conn.transaction():
            fresh = await webhooks.process(conn, event)
    except Exception:
        money_metrics.WEBHOOK_EVENTS.labels(event.type, "failed").inc()
        raise
    money_metrics.WEBHOOK_EVENTS.labels(event.type, "processed" if fresh else "duplicate").inc()
    return Received(received=True)


routes = [
    Router(path="/api/v1/credits", route_handlers=[packages], tags=["packages"]),
    Router(
        path="/api/v1/credits",
        dependencies=USER,
        route_handlers=[my_purchases, my_purchase, purchase],
        tags=["purchases"],
    ),
    Router(path="/api/v1/webhooks", route_handlers=[stripe_webhook], tags=["webhooks"]),
]
