"""The books' rig: a fresh database and the service on it with Stripe keys, talking to localstripe behind
the Stripe stub (Checkout Sessions, disputes and the list endpoints' `created` filter are the stub's),
and a ledger built through the real HTTP API: purchases, grants, debits, refunds, gifts, holds, sync."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
import stripe

from mana_credits.kit.clock import Clock
from mana_credits.payments import repository
from mana_credits.payments.schemas import Package
from tests.payments.conftest import STRIPE_KEY, Instance, _instance
from tests.payments.stripe_fakes import WEBHOOK_SECRET, LocalStripe, StripeStub, event
from tests.support import Actor, Api, JwksServer, service_headers


@pytest.fixture
def books_stripe() -> Iterator[StripeStub]:
    """A Stripe of this test's own (localstripe behind the stub), with no webhook registered: every
    event a test wants delivered it posts itself, the others are lost."""
    upstream = LocalStripe()
    front = StripeStub(upstream=upstream.url)
    yield front
    front.close()
    upstream.close()


@dataclass
class Books:
    shop: Instance
    db: asyncpg.Connection
    url: str
    stub: StripeStub
    sdk: stripe.StripeClient
    package: Package
    users: dict[str, Actor] = field(default_factory=dict)

    @property
    def client(self) -> Any:
        return self.shop.client

    def user(self, name: str) -> Actor:
        if name not in self.users:
            self.users[name] = self.shop.api.actor()
        return self.users[name]

    async def call(self, path: str, body: dict[str, Any], app: str = "chat") -> dict[str, Any]:
        response = await self.client.post(f"/api/v1/internal/credits/{path}", json=body,
                                          headers=service_headers(app))  # fmt: skip
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def grant(self, name: str, amount: int, reason: str) -> None:
        await self.call("grant", {"userId": self.user(name).id, "amount": amount, "reason": reason,
                                  "referenceId": str(uuid.uuid4())}, app="mana-auth")  # fmt: skip

    async def use(self, name: str, amount: int, app: str, operation: str) -> str:
        body = {"userId": self.user(name).id, "amount": amount, "appId": app, "description": operation,
                "metadata": {"operation": operation}}  # fmt: skip
        return str((await self.call("use", body, app="tests"))["transaction"]["id"])

    async def checkout(self, name: str) -> dict[str, Any]:
        """Start a Checkout purchase; the stub holds its open session."""
        response = await self.shop.buy(self.user(name), self.package, successUrl="https://mana.test/ok")
        assert response.status_code == 200, response.text
        return await self.shop.purchase(self.user(name), response.json()["purchaseId"])

    async def intent(self, name: str) -> dict[str, Any]:
        """Start a PaymentIntent purchase and pay it at localstripe (no webhook reaches us)."""
        purchase = await self.shop.bought(self.user(name), self.package)
        intent_id = purchase["stripePaymentIntentId"]
        await self.sdk.v1.payment_intents.update_async(intent_id, params={"payment_method": "pm_card_visa"})
        assert (await self.sdk.v1.payment_intents.confirm_async(intent_id)).status == "succeeded"
        return purchase

    async def deliver(self, type_: str, obj: dict[str, Any], event_id: str | None = None) -> None:
        response = await self.shop.post_event(event(type_, obj, event_id))
        assert response.status_code == 200, response.text

    async def balance(self, name: str) -> int:
        return (await self.shop.api.balance(self.user(name)))["balance"]

    async def session_of(self, purchase: dict[str, Any]) -> str:
        sql = "SELECT stripe_checkout_session_id FROM credits.purchases WHERE id = $1"
        return str(await self.db.fetchval(sql, uuid.UUID(purchase["id"])))

    async def complete_checkout(self, purchase: dict[str, Any], *, deliver: bool = True) -> dict[str, Any]:
        """The payer pays the Checkout Session (the stub then lists it complete); with `deliver`, its
        `checkout.session.completed` reaches us."""
        session = self.stub.complete_session(await self.session_of(purchase))
        if deliver:
            await self.deliver("checkout.session.completed", session)
        return session

    async def build_ledger(self) -> None:
        """A month of everything that moves credits, through the API (the amounts the tests expect)."""
        alice, bob, carol = self.user("alice"), self.user("bob"), self.user("carol")
        await self.complete_checkout(await self.checkout("alice"))  # +500 purchased
        paid = await self.intent("carol")  # +500 purchased, then 200 of 500 cents refunded: -200
        intent = await self.sdk.v1.payment_intents.retrieve_async(paid["stripePaymentIntentId"])
        await self.deliver("payment_intent.succeeded", intent.to_dict())
        refund = await self.sdk.v1.refunds.create_async(
            params={"payment_intent": paid["stripePaymentIntentId"], "amount": 200}
        )
        charge = {"id": refund.charge, "object": "charge", "amount": 500, "amount_refunded": 200,
                  "payment_intent": paid["stripePaymentIntentId"]}  # fmt: skip
        await self.deliver("charge.refunded", charge)
        await self.grant("bob", 200, "welcome")
        await self.grant("alice", 25, "feedback")
        used = await self.use("alice", 30, "chat", "chat_gpt4")
        await self.use("bob", 10, "picture", "image_generation")
        await self.call("refund", {"userId": alice.id, "amount": 5, "description": "answer failed",
                                   "transactionId": used})  # fmt: skip
        gift = await self.client.post("/api/v1/gifts", json={"totalCredits": 100}, headers=alice.headers)
        assert gift.status_code == 201, gift.text
        redeemed = await self.client.post(f"/api/v1/gifts/{gift.json()['code']}/redeem", headers=bob.headers)
        assert redeemed.status_code == 200, redeemed.text
        other = await self.client.post("/api/v1/gifts", json={"totalCredits": 50}, headers=alice.headers)
        cancelled = await self.client.delete(f"/api/v1/gifts/{other.json()['id']}", headers=alice.headers)
        assert cancelled.status_code == 200, cancelled.text
        held = await self.call("reserve", {"userId": bob.id, "amount": 40, "reason": "research"})
        await self.call("commit", {"reservationId": held["reservationId"], "amount": 25})
        released = await self.call("reserve", {"userId": bob.id, "amount": 10, "reason": "research"})
        await self.call("refund-reservation", {"reservationId": released["reservationId"]})
        await self.call("reserve", {"userId": bob.id, "amount": 15, "reason": "research"})  # stays open
        synced = await self.client.post("/api/v1/sync/activate", json={}, headers=alice.headers)
        assert synced.status_code == 200, synced.text
        erased = await self.client.delete(f"/api/v1/internal/credits/balance/{carol.id}",
                                          headers=service_headers("mana-auth"))  # fmt: skip
        assert erased.status_code == 200, erased.text
        expiring = await self.client.post("/api/v1/gifts", json={"totalCredits": 20, "expirationDays": 1},
                                          headers=bob.headers)  # fmt: skip
        assert expiring.status_code == 201, expiring.text
        # A month later on the service's clock (the ledger's rows still carry the database's time): the gift
        # expires back to bob, alice's Cloud Sync renews.
        self.shop.clock.offset += timedelta(days=32)
        try:
            for job in ("gifts/expire", "sync/charge-recurring"):
                done = await self.client.post(f"/api/v1/internal/{job}", headers=service_headers())
                assert done.status_code == 200, done.text
        finally:
            self.shop.clock.offset -= timedelta(days=32)


@pytest.fixture
async def books(
    fresh_database: Callable[[], Awaitable[str]], jwks: JwksServer, clock: Clock, books_stripe: StripeStub
) -> AsyncIterator[Books]:
    url = await fresh_database()
    server, client = await _instance(
        url, jwks, clock, STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, STRIPE_API_BASE=books_stripe.url
    )
    db = await asyncpg.connect(url)
    package = await repository.add_package(
        db, name="Basic", credits=500, price_euro_cents=500, description="500 credits", sort_order=1
    )
    assert package is not None
    sdk = stripe.StripeClient(
        STRIPE_KEY, base_addresses={"api": books_stripe.url}, http_client=stripe.HTTPXClient()
    )
    try:
        yield Books(Instance(server, client, Api(client, jwks), clock), db, url, books_stripe, sdk, package)
    finally:
        await db.close()
        await client.aclose()
        await server.stop()
