"""The Stripe calls this service makes, through the official SDK's `StripeClient` and its async methods.

`STRIPE_API_BASE` points the SDK at any Stripe-compatible server (localstripe in the tests). Every create
call carries an idempotency key derived from our own ids, so the SDK's network retry (and a replayed
request) never makes a second customer, PaymentIntent or Checkout Session.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from mana_credits.config import Settings
from mana_credits.payments.errors import PaymentProviderError, PaymentsUnavailable

if TYPE_CHECKING:  # the context holds the gateway
    from mana_credits.context import AppContext

log = logging.getLogger("mana_credits.payments.stripe")

CURRENCY = "eur"
TIMEOUT_SECONDS = 20.0
# Starting a purchase holds a pooled database connection while Stripe answers (the purchase row commits
# only with Stripe's answer). Cap how many do so at once, so a slow Stripe cannot take every connection
# of a worker's pool away from balances and debits; further purchases wait their turn.
MAX_PURCHASES_IN_FLIGHT = 2


@dataclass(frozen=True)
class Payment:
    """What the web app needs to take the payment: a PaymentIntent's secret or a Checkout URL."""

    payment_intent_id: str | None
    client_secret: str | None
    checkout_session_id: str | None
    checkout_url: str | None


class StripeGateway:
    def __init__(self, settings: Settings) -> None:
        import stripe  # the SDK is large: loaded with the first payment, not in every worker at start

        assert settings.STRIPE_SECRET_KEY
        base = settings.STRIPE_API_BASE
        self.http = stripe.HTTPXClient(timeout=TIMEOUT_SECONDS)
        self.purchase_slots = asyncio.Semaphore(MAX_PURCHASES_IN_FLIGHT)
        self.client = stripe.StripeClient(
            settings.STRIPE_SECRET_KEY,
            base_addresses={"api": base.rstrip("/")} if base else None,
            http_client=self.http,
            max_network_retries=1,
        )

    async def aclose(self) -> None:
        await self.http.close_async()  # type: ignore[no-untyped-call]

    async def create_customer(self, user_id: str, email: str | None, name: str | None) -> str:
        params: dict[str, Any] = {"metadata": {"userId": user_id}}
        if email:
            params["email"] = email
        if name:
            params["name"] = name
        customer = await _call(
            self.client.v1.customers.create_async(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": f"mana-customer-{user_id}"},
            )
        )
        return str(customer.id)

    async def create_payment_intent(
        self, *, purchase_id: UUID, amount: int, customer_id: str, metadata: dict[str, str]
    ) -> Payment:
        # No payment method list: Stripe offers what the dashboard enables (card, SEPA Direct Debit).
        intent = await _call(
            self.client.v1.payment_intents.create_async(
                params={
                    "amount": amount,
                    "currency": CURRENCY,
                    "customer": customer_id,
                    "metadata": metadata,
                },
                options={"idempotency_key": f"mana-purchase-{purchase_id}-pi"},
            )
        )
        return Payment(
            payment_intent_id=intent.id,
            client_secret=intent.client_secret,
            checkout_session_id=None,
            checkout_url=None,
        )

    async def create_checkout_session(
        self,
        *,
        purchase_id: UUID,
        amount: int,
        product_name: str,
        customer_id: str,
        metadata: dict[str, str],
        success_url: str,
        cancel_url: str | None,
    ) -> Payment:
        params: dict[str, Any] = {
            "mode": "payment",
            "customer": customer_id,
            "client_reference_id": str(purchase_id),
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": CURRENCY,
                        "unit_amount": amount,
                        "product_data": {"name": product_name},
                    },
                }
            ],
            "success_url": success_url,
            "metadata": metadata,
            # The PaymentIntent the session creates carries the same metadata, so either event credits.
            "payment_intent_data": {"metadata": metadata},
        }
        if cancel_url:
            params["cancel_url"] = cancel_url
        session = await _call(
            self.client.v1.checkout.sessions.create_async(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": f"mana-purchase-{purchase_id}-checkout"},
            )
        )
        return Payment(
            payment_intent_id=None,
            client_secret=None,
            checkout_session_id=session.id,
            checkout_url=session.url,
        )

    async def listed(self, resource: str, **params: Any) -> AsyncIterator[dict[str, Any]]:
        """Every object of a Stripe list (`payment_intents`, `checkout.sessions`, `refunds`, `disputes`),
        newest first, 100 a page through the SDK's auto-paging; each as a plain dict (its wire form)."""
        import stripe

        service: Any = self.client.v1
        for part in resource.split("."):
            service = getattr(service, part)
        first = await _call(service.list_async(params={"limit": 100, **params}))
        try:
            async for item in first.auto_paging_iter():
                yield item.to_dict()
        except stripe.StripeError as exc:  # a later page
            log.error("stripe list %s failed: %s (%s)", resource, type(exc).__name__, exc.user_message or exc)
            raise PaymentProviderError() from exc


async def _call(request: Any) -> Any:
    import stripe

    try:
        return await request
    except stripe.StripeError as exc:
        log.error("stripe call failed: %s (%s)", type(exc).__name__, exc.user_message or exc)
        raise PaymentProviderError() from exc


def gateway(ctx: AppContext) -> StripeGateway:
    """The process's Stripe client; 503 `payments_unavailable` when no secret key is configured."""
    if not ctx.settings.STRIPE_SECRET_KEY:
        raise PaymentsUnavailable()
    if ctx.stripe is None:
        ctx.stripe = StripeGateway(ctx.settings)
    return ctx.stripe
