"""Payments test rig: localstripe (a real, stateful fake Stripe) in a subprocess, a second app instance
with Stripe keys whose webhook URL localstripe calls with real signatures, an instance pointed at a
Stripe stub (Checkout Sessions, 5xx) and one pointed at a closed port (Stripe down)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
import stripe

from mana_credits.app import create_app
from mana_credits.kit.clock import Clock
from mana_credits.payments import repository
from mana_credits.payments.schemas import Package
from tests.conftest import LiveServer, make_settings
from tests.payments.stripe_fakes import WEBHOOK_SECRET, LocalStripe, StripeStub, event, payment_intent, sign
from tests.support import Actor, Api, JwksServer

STRIPE_KEY = "sk_test_mana_credits"


@dataclass
class Instance:
    """An app instance with its own Stripe settings, on the shared test database and clock."""

    server: LiveServer
    client: httpx.AsyncClient
    api: Api
    clock: Clock

    async def buy(self, actor: Actor, package: Package, **extra: Any) -> httpx.Response:
        return await self.client.post(
            "/api/v1/credits/purchase", json={"packageId": str(package.id), **extra}, headers=actor.headers
        )

    async def bought(self, actor: Actor, package: Package) -> dict[str, Any]:
        """Start a purchase and return the purchase as `GET /credits/purchase/:id` shows it."""
        response = await self.buy(actor, package)
        assert response.status_code == 200, response.text
        return await self.purchase(actor, response.json()["purchaseId"])

    async def purchase(self, actor: Actor, purchase_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/v1/credits/purchase/{purchase_id}", headers=actor.headers)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def wait_for_status(self, actor: Actor, purchase_id: str, status: str) -> dict[str, Any]:
        """localstripe delivers its webhooks about a second late: poll, bounded."""
        for _ in range(150):
            purchase = await self.purchase(actor, purchase_id)
            if purchase["status"] == status:
                return purchase
            await asyncio.sleep(0.1)
        raise AssertionError(f"purchase {purchase_id} never became {status}: {purchase}")

    async def post_event(
        self, body: dict[str, Any] | bytes, *, timestamp: int | None = None, secret: str = WEBHOOK_SECRET
    ) -> httpx.Response:
        payload = body if isinstance(body, bytes) else msgspec.json.encode(body)
        stamp = int(self.clock.now().timestamp()) if timestamp is None else timestamp
        return await self.client.post(
            "/api/v1/webhooks/stripe",
            content=payload,
            headers={"Stripe-Signature": sign(payload, stamp, secret), "Content-Type": "application/json"},
        )

    async def pay(self, purchase: dict[str, Any], **changes: Any) -> httpx.Response:
        """Deliver a signed `payment_intent.succeeded` for the purchase, as Stripe would."""
        intent = payment_intent(
            purchase["stripePaymentIntentId"] or f"pi_{uuid.uuid4().hex}", purchase, **changes
        )
        response = await self.post_event(event("payment_intent.succeeded", intent))
        assert response.status_code == 200, response.text
        return response


async def _instance(
    database: str, jwks: JwksServer, clock: Clock, **stripe_settings: Any
) -> tuple[LiveServer, httpx.AsyncClient]:
    settings = make_settings(database, jwks, STRIPE_SECRET_KEY=STRIPE_KEY, **stripe_settings)
    server = LiveServer(create_app(settings, clock=clock))
    url = await server.start()
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    return server, httpx.AsyncClient(base_url=url, timeout=60, limits=limits)


@pytest.fixture(scope="session")
def localstripe() -> Iterator[LocalStripe]:
    server = LocalStripe()
    yield server
    server.close()


@pytest.fixture(scope="session")
def stripe_stub() -> Iterator[StripeStub]:
    stub = StripeStub()
    yield stub
    stub.close()


@pytest.fixture(scope="session")
async def pay(
    database_url_: str, jwks: JwksServer, clock: Clock, localstripe: LocalStripe
) -> AsyncIterator[Instance]:
    """The service with Stripe keys, talking to localstripe, which calls its webhook."""
    server, client = await _instance(
        database_url_, jwks, clock, STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, STRIPE_API_BASE=localstripe.url
    )
    server_url = str(client.base_url).rstrip("/")
    localstripe.register_webhook(server_url + "/api/v1/webhooks/stripe")
    yield Instance(server, client, Api(client, jwks), clock)
    await client.aclose()
    await server.stop()


@pytest.fixture(scope="session")
async def checkout(
    database_url_: str, jwks: JwksServer, clock: Clock, stripe_stub: StripeStub
) -> AsyncIterator[Instance]:
    """The service pointed at the Stripe stub (Checkout Sessions; `fail_with` for 5xx)."""
    server, client = await _instance(
        database_url_, jwks, clock, STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, STRIPE_API_BASE=stripe_stub.url,
        DB_POOL_SIZE=3,
    )  # fmt: skip
    yield Instance(server, client, Api(client, jwks), clock)
    await client.aclose()
    await server.stop()


@pytest.fixture(scope="session")
async def stripe_down(database_url_: str, jwks: JwksServer, clock: Clock) -> AsyncIterator[Instance]:
    """The service pointed at a loopback port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    server, client = await _instance(
        database_url_, jwks, clock, STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=f"http://127.0.0.1:{closed_port}", DB_POOL_SIZE=3,
    )  # fmt: skip
    yield Instance(server, client, Api(client, jwks), clock)
    await client.aclose()
    await server.stop()


@pytest.fixture(scope="session")
def stripe_sdk(localstripe: LocalStripe) -> stripe.StripeClient:
    """What the browser and the Stripe dashboard do in these tests: confirm payments, refund them."""
    return stripe.StripeClient(
        STRIPE_KEY, base_addresses={"api": localstripe.url}, http_client=stripe.HTTPXClient()
    )


@pytest.fixture
async def make_package(db: asyncpg.Connection) -> Callable[..., Awaitable[Package]]:
    async def make(credits: int = 500, price: int = 500, *, name: str | None = None) -> Package:
        package = await repository.add_package(
            db, name=name or f"test-{uuid.uuid4().hex[:10]}", credits=credits, price_euro_cents=price,
            description=f"{credits} credits", sort_order=100,
        )  # fmt: skip
        assert package is not None
        return package

    return make
