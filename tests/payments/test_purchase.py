"""Starting purchases: PaymentIntents through localstripe end to end, customers, outages, validation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
import stripe

from mana_credits.ledger.audit import audit
from mana_credits.payments.schemas import Package
from tests.payments.conftest import Instance
from tests.payments.stripe_fakes import StripeStub
from tests.support import Api

MakePackage = Callable[..., Awaitable[Package]]


async def _purchase_rows(db: asyncpg.Connection, user_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT * FROM credits.transactions WHERE user_id = $1 AND type = 'purchase'", user_id
    )


async def test_payment_intent_purchase_end_to_end(
    pay: Instance, stripe_sdk: stripe.StripeClient, make_package: MakePackage, db: asyncpg.Connection
) -> None:
    package = await make_package(credits=500, price=500)
    user = pay.api.actor()

    response = await pay.buy(user, package)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["amount"] == 500 and body["credits"] == 500
    assert body["clientSecret"].startswith("pi_") and "checkoutUrl" not in body
    purchase = await pay.purchase(user, body["purchaseId"])
    assert purchase["status"] == "pending" and purchase["priceEuroCents"] == 500

    # What Stripe Elements does in the browser (localstripe: set the card first, then confirm).
    intent_id = purchase["stripePaymentIntentId"]
    intent = await stripe_sdk.v1.payment_intents.retrieve_async(intent_id)
    assert intent.amount == 500 and intent.currency == "eur"
    assert intent.metadata["purchaseId"] == purchase["id"] and intent.metadata["userId"] == user.id
    await stripe_sdk.v1.payment_intents.update_async(intent_id, params={"payment_method": "pm_card_visa"})
    confirmed = await stripe_sdk.v1.payment_intents.confirm_async(intent_id)
    assert confirmed.status == "succeeded"

    completed = await pay.wait_for_status(user, purchase["id"], "completed")
    assert completed["completedAt"] is not None
    assert await pay.api.balance(user) == {"balance": 500, "totalEarned": 500, "totalSpent": 0, "reserved": 0}
    history = (await pay.client.get("/api/v1/credits/transactions", headers=user.headers)).json()
    assert [(tx["type"], tx["amount"]) for tx in history] == [("purchase", 500)]
    assert history[0]["metadata"]["purchaseId"] == purchase["id"]
    purchases = (await pay.client.get("/api/v1/credits/purchases", headers=user.headers)).json()
    assert [(p["id"], p["status"]) for p in purchases] == [(purchase["id"], "completed")]
    assert await audit(db) == []


async def test_declined_card_marks_the_purchase_failed(
    pay: Instance, stripe_sdk: stripe.StripeClient, make_package: MakePackage
) -> None:
    package = await make_package()
    user = pay.api.actor()
    purchase = await pay.bought(user, package)
    intent_id = purchase["stripePaymentIntentId"]
    await stripe_sdk.v1.payment_intents.update_async(
        intent_id, params={"payment_method": "pm_card_chargeCustomerFail"}
    )
    with pytest.raises(stripe.StripeError):
        await stripe_sdk.v1.payment_intents.confirm_async(intent_id)

    await pay.wait_for_status(user, purchase["id"], "failed")
    assert (await pay.api.balance(user))["balance"] == 0


async def test_concurrent_first_purchases_make_one_stripe_customer(
    pay: Instance, stripe_sdk: stripe.StripeClient, make_package: MakePackage, db: asyncpg.Connection
) -> None:
    package = await make_package()
    user = pay.api.actor()

    responses = await asyncio.gather(*[pay.buy(user, package) for _ in range(6)])

    assert [r.status_code for r in responses] == [200] * 6
    assert len({r.json()["purchaseId"] for r in responses}) == 6
    customers = await db.fetch("SELECT * FROM credits.stripe_customers WHERE user_id = $1", user.id)
    assert len(customers) == 1
    customer_id = customers[0]["stripe_customer_id"]
    used = await db.fetch(
        "SELECT DISTINCT stripe_customer_id FROM credits.purchases WHERE user_id = $1", user.id
    )
    assert [row["stripe_customer_id"] for row in used] == [customer_id]
    # And Stripe (localstripe ignores idempotency keys, so only our lock can have kept this at one).
    listed = await stripe_sdk.v1.customers.list_async(params={"limit": 100})
    ours = [
        c.id for c in listed.data if c.metadata is not None and c.metadata.to_dict().get("userId") == user.id
    ]
    assert ours == [customer_id]


async def test_without_stripe_keys_purchase_answers_503(api: Api, make_package: MakePackage) -> None:
    package = await make_package()
    user = api.actor()
    response = await api.client.post(
        "/api/v1/credits/purchase", json={"packageId": str(package.id)}, headers=user.headers
    )
    assert response.status_code == 503
    assert response.json()["code"] == "payments_unavailable"
    signed = {"Stripe-Signature": "t=1,v1=00"}  # an unconfigured server cannot check any signature
    webhook = await api.client.post("/api/v1/webhooks/stripe", content=b"{}", headers=signed)
    assert webhook.status_code == 503


async def test_stripe_down_answers_502_and_leaves_nothing_to_credit(
    stripe_down: Instance, pay: Instance, make_package: MakePackage, db: asyncpg.Connection
) -> None:
    package = await make_package()
    user = stripe_down.api.actor()

    response = await stripe_down.buy(user, package)

    assert response.status_code == 502, response.text
    assert response.json()["code"] == "payment_provider_error"
    assert await db.fetchval("SELECT count(*) FROM credits.purchases WHERE user_id = $1", user.id) == 0
    # Even a payment event naming that user and package finds no purchase to credit.
    ghost = {"id": str(uuid.uuid4()), "userId": user.id, "packageId": str(package.id), "priceEuroCents": 500}
    await pay.pay({**ghost, "stripePaymentIntentId": None})
    assert (await pay.api.balance(user))["balance"] == 0


async def test_stripe_5xx_on_payment_intent_answers_502_and_commits_no_purchase(
    checkout: Instance, stripe_stub: StripeStub, make_package: MakePackage, db: asyncpg.Connection
) -> None:
    package = await make_package()
    user = checkout.api.actor()
    assert (await checkout.buy(user, package, successUrl="https://mana.test/ok")).status_code == 200
    stripe_stub.fail_with = 500
    try:
        response = await checkout.buy(user, package, successUrl="https://mana.test/ok")
    finally:
        stripe_stub.fail_with = None
    assert response.status_code == 502
    assert response.json()["code"] == "payment_provider_error"
    assert await db.fetchval("SELECT count(*) FROM credits.purchases WHERE user_id = $1", user.id) == 1


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"packageId": "not-a-uuid"},
        {"packageId": 5},
        {"packageId": "x", "successUrl": "javascript:alert(1)"},
    ],
)
async def test_purchase_rejects_bad_input_with_400(pay: Instance, body: dict[str, object]) -> None:
    user = pay.api.actor()
    response = await pay.client.post("/api/v1/credits/purchase", json=body, headers=user.headers)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "validation_error"


async def test_unknown_or_inactive_package_is_404(
    pay: Instance, make_package: MakePackage, db: asyncpg.Connection
) -> None:
    user = pay.api.actor()
    missing = await pay.client.post(
        "/api/v1/credits/purchase", json={"packageId": str(uuid.uuid4())}, headers=user.headers
    )
    assert missing.status_code == 404
    package = await make_package()
    await db.execute("UPDATE credits.packages SET active = false WHERE id = $1", package.id)
    assert (await pay.buy(user, package)).status_code == 404
    listed = (await pay.client.get("/api/v1/credits/packages")).json()
    assert str(package.id) not in {p["id"] for p in listed}


async def test_purchase_with_idempotency_key_replays(pay: Instance, make_package: MakePackage) -> None:
    package = await make_package()
    user = pay.api.actor()
    headers = {**user.headers, "Idempotency-Key": "buy-1"}
    body = {"packageId": str(package.id)}
    first, second = [
        await pay.client.post("/api/v1/credits/purchase", json=body, headers=headers) for _ in range(2)
    ]
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    other = await pay.client.post(
        "/api/v1/credits/purchase", json={"packageId": str((await make_package()).id)}, headers=headers
    )
    assert other.status_code == 409
    purchases = (await pay.client.get("/api/v1/credits/purchases", headers=user.headers)).json()
    assert len(purchases) == 1


async def test_someone_elses_purchase_is_404(pay: Instance, make_package: MakePackage) -> None:
    owner, other = pay.api.actor(), pay.api.actor()
    purchase = await pay.bought(owner, await make_package())
    response = await pay.client.get(f"/api/v1/credits/purchase/{purchase['id']}", headers=other.headers)
    assert response.status_code == 404
    assert (await pay.client.get("/api/v1/credits/purchase/nope", headers=owner.headers)).status_code == 400
