"""Checkout Sessions (the web app's path): created against the Stripe stub, settled by signed events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from mana_credits.kit.clock import Clock
from mana_credits.payments.schemas import Package
from tests.payments.conftest import Instance, _instance
from tests.payments.stripe_fakes import LocalStripe, StripeStub, event
from tests.support import Actor, Api, JwksServer

MakePackage = Callable[..., Awaitable[Package]]
URLS = {"successUrl": "https://mana.test/credits?paid=1", "cancelUrl": "https://mana.test/credits"}


async def _start(checkout: Instance, user: Actor, package: Package) -> tuple[dict[str, Any], dict[str, Any]]:
    response = await checkout.buy(user, package, **URLS)
    assert response.status_code == 200, response.text
    body = response.json()
    return body, await checkout.purchase(user, body["purchaseId"])


def _session(
    session_id: str, purchase: dict[str, Any], *, payment_status: str = "paid", amount: int | None = None
) -> dict[str, Any]:
    return {
        "id": session_id,
        "object": "checkout.session",
        "payment_status": payment_status,
        "status": "complete",
        "amount_total": purchase["priceEuroCents"] if amount is None else amount,
        "currency": "eur",
        "payment_intent": "pi_from_checkout_" + purchase["id"][:8],
        "client_reference_id": purchase["id"],
        "metadata": {
            "userId": purchase["userId"],
            "packageId": purchase["packageId"],
            "purchaseId": purchase["id"],
        },
    }


async def _session_id(db: asyncpg.Connection, purchase_id: str) -> str:
    return str(
        await db.fetchval(
            "SELECT stripe_checkout_session_id FROM credits.purchases WHERE id = $1::uuid", purchase_id
        )
    )


async def test_checkout_session_is_created_with_the_snapshot_and_keys(
    checkout: Instance, stripe_stub: StripeStub, make_package: MakePackage, db: asyncpg.Connection
) -> None:
    package = await make_package(credits=1000, price=900)
    user = checkout.api.actor()

    body, purchase = await _start(checkout, user, package)

    assert body["checkoutUrl"].startswith("https://checkout.stripe.test/c/pay/cs_test_")
    assert body["clientSecret"] is None
    assert (body["amount"], body["credits"]) == (900, 1000)
    assert purchase["status"] == "pending" and purchase["stripePaymentIntentId"] is None
    path, form, headers = stripe_stub.requests[-1]
    assert path == "/v1/checkout/sessions"
    assert form["mode"] == "payment"
    assert form["line_items[0][price_data][unit_amount]"] == "900"
    assert form["line_items[0][price_data][currency]"] == "eur"
    assert form["success_url"] == URLS["successUrl"] and form["cancel_url"] == URLS["cancelUrl"]
    assert form["metadata[purchaseId]"] == purchase["id"] == form["client_reference_id"]
    assert form["payment_intent_data[metadata][purchaseId]"] == purchase["id"]
    assert headers["Idempotency-Key"] == f"mana-purchase-{purchase['id']}-checkout"
    customer_calls = [h for p, _, h in stripe_stub.requests if p == "/v1/customers"]
    assert f"mana-customer-{user.id}" in {h["Idempotency-Key"] for h in customer_calls}
    assert await _session_id(db, purchase["id"]) in body["checkoutUrl"]


async def test_completed_paid_session_credits_once_even_with_its_payment_intent_event(
    checkout: Instance, make_package: MakePackage, db: asyncpg.Connection
) -> None:
    user = checkout.api.actor()
    _, purchase = await _start(checkout, user, await make_package(credits=500, price=500))
    session = _session(await _session_id(db, purchase["id"]), purchase)

    assert (await checkout.post_event(event("checkout.session.completed", session))).status_code == 200
    # Stripe also sends payment_intent.succeeded for the session's PaymentIntent (same metadata).
    await checkout.pay({**purchase, "stripePaymentIntentId": session["payment_intent"]})

    completed = await checkout.purchase(user, purchase["id"])
    assert completed["status"] == "completed"
    assert completed["stripePaymentIntentId"] == session["payment_intent"]
    assert (await checkout.api.balance(user))["balance"] == 500
    count = "SELECT count(*) FROM credits.transactions WHERE user_id = $1"
    assert await db.fetchval(count, user.id) == 1


async def test_unpaid_completion_waits_for_the_async_payment(
    checkout: Instance, make_package: MakePackage, db: asyncpg.Connection
) -> None:
    user = checkout.api.actor()
    _, purchase = await _start(checkout, user, await make_package())
    session = _session(await _session_id(db, purchase["id"]), purchase, payment_status="unpaid")

    await checkout.post_event(event("checkout.session.completed", session))
    assert (await checkout.purchase(user, purchase["id"]))["status"] == "pending"

    await checkout.post_event(
        event("checkout.session.async_payment_succeeded", {**session, "payment_status": "paid"})
    )
    assert (await checkout.purchase(user, purchase["id"]))["status"] == "completed"
    assert (await checkout.api.balance(user))["balance"] == 500


async def test_expired_or_failed_sessions_fail_the_purchase_but_never_a_completed_one(
    checkout: Instance, make_package: MakePackage, db: asyncpg.Connection
) -> None:
    user = checkout.api.actor()
    package = await make_package()
    _, expired = await _start(checkout, user, package)
    await checkout.post_event(
        event("checkout.session.expired", _session(await _session_id(db, expired["id"]), expired))
    )
    assert (await checkout.purchase(user, expired["id"]))["status"] == "failed"

    _, paid = await _start(checkout, user, package)
    session = _session(await _session_id(db, paid["id"]), paid)
    await checkout.post_event(event("checkout.session.completed", session))
    await checkout.post_event(event("checkout.session.async_payment_failed", session))
    assert (await checkout.purchase(user, paid["id"]))["status"] == "completed"
    assert (await checkout.api.balance(user))["balance"] == 500


async def test_session_amount_mismatch_is_not_credited(
    checkout: Instance, make_package: MakePackage, db: asyncpg.Connection
) -> None:
    user = checkout.api.actor()
    _, purchase = await _start(checkout, user, await make_package(credits=500, price=500))
    session = _session(await _session_id(db, purchase["id"]), purchase, amount=50)
    await checkout.post_event(event("checkout.session.completed", session))
    assert (await checkout.purchase(user, purchase["id"]))["status"] == "pending"
    assert (await checkout.api.balance(user))["balance"] == 0


async def test_a_slow_stripe_does_not_take_every_database_connection(
    checkout: Instance, stripe_stub: StripeStub, make_package: MakePackage
) -> None:
    """Purchases wait for Stripe holding a connection each; the pool (3 here) must keep serving others."""
    package = await make_package()
    buyers = [checkout.api.actor() for _ in range(6)]
    stripe_stub.release.clear()
    try:
        arrived = len(stripe_stub.requests)
        purchases = [asyncio.create_task(checkout.buy(buyer, package, **URLS)) for buyer in buyers]
        for _ in range(200):  # bounded: until Stripe is holding the first calls
            if len(stripe_stub.requests) > arrived:
                break
            await asyncio.sleep(0.05)
        reads = await asyncio.gather(
            *[checkout.client.get("/api/v1/credits/balance", headers=buyer.headers) for buyer in buyers]
        )
        assert [r.status_code for r in reads] == [200] * len(buyers)
        assert not any(task.done() for task in purchases)  # they really were stuck at Stripe
    finally:
        stripe_stub.release.set()
    results = await asyncio.gather(*purchases)
    assert [r.status_code for r in results] == [200] * len(buyers)
    assert all(r.json()["checkoutUrl"] for r in results)


async def test_refund_announced_before_the_checkout_payment_is_taken_back_when_it_credits(
    checkout: Instance, make_package: MakePackage, db: asyncpg.Connection
) -> None:
    from mana_credits.ledger.audit import audit

    user = checkout.api.actor()
    _, purchase = await _start(checkout, user, await make_package(credits=500, price=500))
    session = _session(await _session_id(db, purchase["id"]), purchase)
    # The purchase does not know its PaymentIntent yet: Stripe tells it with the completed session.
    charge = {
        "id": f"ch_{uuid.uuid4().hex[:14]}", "object": "charge", "amount": 500, "amount_refunded": 200,
        "currency": "eur", "refunded": False, "payment_intent": session["payment_intent"],
    }  # fmt: skip
    assert (await checkout.post_event(event("charge.refunded", charge))).status_code == 200
    assert (await checkout.api.balance(user))["balance"] == 0

    assert (await checkout.post_event(event("checkout.session.completed", session))).status_code == 200

    rows = await db.fetch("SELECT type, amount FROM credits.transactions WHERE user_id = $1", user.id)
    assert sorted((r["type"], r["amount"]) for r in rows) == [("purchase", 500), ("reversal", -200)]
    assert (await checkout.api.balance(user))["balance"] == 300
    assert await audit(db) == []
    left = await db.fetchval(
        "SELECT count(*) FROM credits.stripe_unmatched_returns WHERE payment_intent_id = $1",
        session["payment_intent"],
    )
    assert left == 0


async def test_non_ascii_signature_header_is_400(checkout: Instance) -> None:
    for header in ("t=123,v1=\u00e9", "t=\u00b2\u00b3,v1=abc"):
        response = await checkout.client.post(
            "/api/v1/webhooks/stripe",
            content=b"{}",
            headers=[(b"Stripe-Signature", header.encode("latin-1")), (b"Content-Type", b"application/json")],
        )
        assert response.status_code == 400 and response.json()["code"] == "invalid_signature"


async def test_a_null_cancel_url_is_no_cancel_url_on_either_way_to_pay(
    database_url_: str, jwks: JwksServer, clock: Clock, localstripe: LocalStripe, make_package: MakePackage
) -> None:
    """`"cancelUrl": null` was a 502 in the fuzz: not our request (Stripe's cancel_url is optional) but
    localstripe, which has no Checkout Sessions. One test server for both ways to pay shows the truth."""
    front = StripeStub(upstream=localstripe.url)
    server, client = await _instance(database_url_, jwks, clock, STRIPE_API_BASE=front.url)
    try:
        api = Api(client, jwks)
        package = await make_package()
        user = api.actor()
        hosted = await client.post(
            "/api/v1/credits/purchase", headers=user.headers,
            json={"packageId": str(package.id), "successUrl": URLS["successUrl"], "cancelUrl": None},
        )  # fmt: skip
        assert hosted.status_code == 200, hosted.text
        assert hosted.json()["checkoutUrl"].startswith("https://checkout.stripe.test/")
        ((_, form, _),) = [r for r in front.requests if r[0] == "/v1/checkout/sessions"]
        assert form["success_url"] == URLS["successUrl"] and "cancel_url" not in form
        elements = await client.post(
            "/api/v1/credits/purchase", headers=user.headers,
            json={"packageId": str(package.id), "successUrl": None, "cancelUrl": None},
        )  # fmt: skip
        assert elements.status_code == 200, elements.text
        assert elements.json()["clientSecret"].startswith("pi_")  # a PaymentIntent, made by localstripe
    finally:
        await client.aclose()
        await server.stop()
        front.close()
