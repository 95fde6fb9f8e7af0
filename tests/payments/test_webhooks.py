"""The Stripe webhook: signatures, exactly-once crediting, failures, mismatches, refunds and disputes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
import stripe

from mana_credits.ledger.audit import audit
from mana_credits.payments.schemas import Package
from tests.payments.conftest import Instance
from tests.payments.stripe_fakes import event, payment_intent, sign
from tests.support import Actor

MakePackage = Callable[..., Awaitable[Package]]


async def _ledger(db: asyncpg.Connection, user_id: str) -> list[tuple[str, int]]:
    rows = await db.fetch(
        "SELECT type, amount FROM credits.transactions WHERE user_id = $1 ORDER BY created_at, id", user_id
    )
    return [(row["type"], row["amount"]) for row in rows]


def _charge(purchase: dict[str, Any], refunded: int) -> dict[str, Any]:
    return {
        "id": f"ch_{uuid.uuid4().hex[:14]}",
        "object": "charge",
        "amount": purchase["priceEuroCents"],
        "amount_refunded": refunded,
        "currency": "eur",
        "refunded": refunded == purchase["priceEuroCents"],
        "payment_intent": purchase["stripePaymentIntentId"],
    }


async def _completed(pay: Instance, user: Actor, package: Package) -> dict[str, Any]:
    purchase = await pay.bought(user, package)
    await pay.pay(purchase)
    return await pay.purchase(user, purchase["id"])


async def test_same_succeeded_event_ten_times_concurrently_credits_once(
    pay: Instance, make_package: MakePackage, db: asyncpg.Connection
) -> None:
    package = await make_package(credits=500, price=500)
    user = pay.api.actor()
    purchase = await pay.bought(user, package)
    succeeded = event("payment_intent.succeeded", payment_intent(purchase["stripePaymentIntentId"], purchase))
    payload = msgspec.json.encode(succeeded)

    responses = await asyncio.gather(*[pay.post_event(payload) for _ in range(10)])

    assert [r.status_code for r in responses] == [200] * 10
    assert all(r.json() == {"received": True} for r in responses)
    assert (await pay.purchase(user, purchase["id"]))["status"] == "completed"
    assert await _ledger(db, user.id) == [("purchase", 500)]
    assert (await pay.api.balance(user))["balance"] == 500
    assert await db.fetchval("SELECT count(*) FROM credits.stripe_events WHERE id = $1", succeeded["id"]) == 1
    assert await audit(db) == []


async def test_two_different_success_events_for_one_purchase_credit_once(
    pay: Instance, make_package: MakePackage, db: asyncpg.Connection
) -> None:
    user = pay.api.actor()
    purchase = await pay.bought(user, await make_package())
    await asyncio.gather(pay.pay(purchase), pay.pay(purchase))
    assert await _ledger(db, user.id) == [("purchase", 500)]


@pytest.mark.parametrize("failure", ["payment_intent.payment_failed", "payment_intent.canceled"])
async def test_failure_after_success_leaves_the_purchase_completed(
    pay: Instance, make_package: MakePackage, db: asyncpg.Connection, failure: str
) -> None:
    user = pay.api.actor()
    purchase = await pay.bought(user, await make_package())
    await pay.pay(purchase)
    intent = payment_intent(purchase["stripePaymentIntentId"], purchase, status="requires_payment_method")

    response = await pay.post_event(event(failure, intent))

    assert response.status_code == 200
    assert (await pay.purchase(user, purchase["id"]))["status"] == "completed"
    assert await _ledger(db, user.id) == [("purchase", 500)]


async def test_success_after_a_declined_attempt_still_credits_once(
    pay: Instance, make_package: MakePackage, db: asyncpg.Connection
) -> None:
    """Stripe lets the payer retry a declined PaymentIntent with another card: money received counts."""
    user = pay.api.actor()
    purchase = await pay.bought(user, await make_package())
    declined = payment_intent(purchase["stripePaymentIntentId"], purchase, status="requires_payment_method")
    await pay.post_event(event("payment_intent.payment_failed", declined))
    assert (await pay.purchase(user, purchase["id"]))["status"] == "failed"

    await pay.pay(purchase)

    assert (await pay.purchase(user, purchase["id"]))["status"] == "completed"
    assert await _ledger(db, user.id) == [("purchase", 500)]


@pytest.mark.parametrize("change", [{"amount": 100}, {"amount": 5000}, {"currency": "usd"}])
async def test_amount_or_currency_mismatch_is_not_credited(
    pay: Instance, make_package: MakePackage, db: asyncpg.Connection, change: dict[str, Any]
) -> None:
    user = pay.api.actor()
    purchase = await pay.bought(user, await make_package(credits=500, price=500))

    await pay.pay(purchase, **change)

    assert (await pay.purchase(user, purchase["id"]))["status"] == "pending"
    assert await _ledger(db, user.id) == []


async def test_partial_refund_of_half_reverses_half_the_credits(
    pay: Instance, stripe_sdk: stripe.StripeClient, make_package: MakePackage, db: asyncpg.Connection
) -> None:
    package = await make_package(credits=500, price=500)
    user = pay.api.actor()
    purchase = await pay.bought(user, package)
    intent_id = purchase["stripePaymentIntentId"]
    await stripe_sdk.v1.payment_intents.update_async(intent_id, params={"payment_method": "pm_card_visa"})
    await stripe_sdk.v1.payment_intents.confirm_async(intent_id)
    await pay.wait_for_status(user, purchase["id"], "completed")

    # Refund 50 % in (local)stripe; it sends no charge.refunded, so deliver the charge as Stripe would.
    await stripe_sdk.v1.refunds.create_async(params={"payment_intent": intent_id, "amount": 250})
    intent = await stripe_sdk.v1.payment_intents.retrieve_async(intent_id)
    latest = intent.latest_charge  # localstripe expands it; Stripe gives the id
    assert latest is not None, "the confirmed intent has a charge"
    charge_id = latest if isinstance(latest, str) else latest.id
    charge = (await stripe_sdk.v1.charges.retrieve_async(charge_id)).to_dict()
    assert charge["amount_refunded"] == 250
    half = event("charge.refunded", charge)
    assert (await pay.post_event(half)).status_code == 200
    assert (await pay.post_event(half)).status_code == 200  # redelivered: nothing more

    assert (await pay.api.balance(user))["balance"] == 250
    assert await _ledger(db, user.id) == [("purchase", 500), ("reversal", -250)]

    # A second refund grows amount_refunded to the full price: only the difference is taken back.
    await pay.post_event(event("charge.refunded", {**charge, "amount_refunded": 500, "refunded": True}))
    await pay.post_event(event("charge.refunded", charge))  # a stale, smaller one changes nothing
    assert await _ledger(db, user.id) == [("purchase", 500), ("reversal", -250), ("reversal", -250)]
    balance = await pay.api.balance(user)
    assert balance == {"balance": 0, "totalEarned": 0, "totalSpent": 0, "reserved": 0}
    assert await audit(db) == []


async def test_refund_after_spending_goes_negative_blocks_debits_until_topped_up(
    pay: Instance, make_package: MakePackage, db: asyncpg.Connection
) -> None:
    package = await make_package(credits=500, price=500)
    user = pay.api.actor()
    purchase = await _completed(pay, user, package)
    spend = {"amount": 400, "appId": "chat", "description": "chat"}
    assert (await pay.client.post("/api/v1/credits/use", json=spend, headers=user.headers)).status_code == 200

    await pay.post_event(event("charge.refunded", _charge(purchase, refunded=500)))

    assert (await pay.api.balance(user))["balance"] == -400
    one = {"amount": 1, "appId": "chat", "description": "chat"}
    refused = await pay.client.post("/api/v1/credits/use", json=one, headers=user.headers)
    assert refused.status_code == 402
    assert refused.json()["details"] == {"required": 1, "available": -400}

    await _completed(pay, user, package)  # top up: buy again

    assert (await pay.api.balance(user))["balance"] == 100
    assert (await pay.client.post("/api/v1/credits/use", json=one, headers=user.headers)).status_code == 200
    assert await _ledger(db, user.id) == [
        ("purchase", 500), ("usage", -400), ("reversal", -500), ("purchase", 500), ("usage", -1)
    ]  # fmt: skip
    assert await audit(db) == []


async def test_dispute_takes_the_credits_back(
    pay: Instance, make_package: MakePackage, db: asyncpg.Connection
) -> None:
    user = pay.api.actor()
    purchase = await _completed(pay, user, await make_package(credits=1000, price=900))
    dispute = {
        "id": f"dp_{uuid.uuid4().hex[:14]}",
        "object": "dispute",
        "amount": 900,
        "currency": "eur",
        "charge": "ch_x",
        "payment_intent": purchase["stripePaymentIntentId"],
        "status": "needs_response",
    }
    await pay.post_event(event("charge.dispute.created", dispute))
    await pay.post_event(event("charge.dispute.created", dispute))  # same dispute, new event id
    assert await _ledger(db, user.id) == [("purchase", 1000), ("reversal", -1000)]


async def test_a_won_dispute_gives_the_credits_back_once_and_a_lost_one_does_not(
    pay: Instance, make_package: MakePackage, db: asyncpg.Connection
) -> None:
    package = await make_package(credits=1000, price=900)
    winner, loser = pay.api.actor(), pay.api.actor()
    for user in (winner, loser):
        purchase = await _completed(pay, user, package)
        dispute = {
            "id": f"dp_{uuid.uuid4().hex[:14]}", "object": "dispute", "amount": 900, "currency": "eur",
            "payment_intent": purchase["stripePaymentIntentId"], "status": "needs_response",
        }  # fmt: skip
        await pay.post_event(event("charge.dispute.created", dispute))
        closed = {**dispute, "status": "won" if user is winner else "lost"}
        await pay.post_event(event("charge.dispute.closed", closed))
        await pay.post_event(event("charge.dispute.closed", closed))  # delivered again: no second restore
    assert await _ledger(db, winner.id) == [("purchase", 1000), ("reversal", -1000), ("reversal", 1000)]
    assert (await pay.api.balance(winner))["balance"] == 1000
    assert await _ledger(db, loser.id) == [("purchase", 1000), ("reversal", -1000)]
    assert (await pay.api.balance(loser))["balance"] == 0
    assert await audit(db) == []


async def test_refund_delivered_before_the_payment_is_applied_when_it_credits(
    pay: Instance, make_package: MakePackage, db: asyncpg.Connection
) -> None:
    user = pay.api.actor()
    purchase = await pay.bought(user, await make_package(credits=500, price=500))
    await pay.post_event(event("charge.refunded", _charge(purchase, refunded=100)))
    assert await _ledger(db, user.id) == []

    await pay.pay(purchase)

    # Both rows come from one transaction (same created_at), so compare them unordered.
    assert sorted(await _ledger(db, user.id)) == [("purchase", 500), ("reversal", -100)]
    assert (await pay.api.balance(user))["balance"] == 400
    assert await audit(db) == []


async def test_bad_or_missing_signature_is_400_and_changes_nothing(
    pay: Instance, make_package: MakePackage, db: asyncpg.Connection
) -> None:
    user = pay.api.actor()
    purchase = await pay.bought(user, await make_package())
    succeeded = event("payment_intent.succeeded", payment_intent(purchase["stripePaymentIntentId"], purchase))
    payload = msgspec.json.encode(succeeded)
    url = "/api/v1/webhooks/stripe"
    now = int(pay.clock.now().timestamp())

    responses = [
        await pay.client.post(url, content=payload),
        await pay.client.post(url, content=payload, headers={"Stripe-Signature": "garbage"}),
        await pay.post_event(payload, secret="whsec_someone_else"),
        await pay.post_event(payload, timestamp=now - 301),
    ]
    tampered = payload.replace(b'"amount_received":500', b'"amount_received":5')
    assert tampered != payload
    responses.append(
        await pay.client.post(url, content=tampered, headers={"Stripe-Signature": sign(payload, now)})
    )

    assert [r.status_code for r in responses] == [400] * 5
    assert {r.json()["code"] for r in responses} == {"invalid_signature"}
    assert await db.fetchval("SELECT count(*) FROM credits.stripe_events WHERE id = $1", succeeded["id"]) == 0
    assert (await pay.purchase(user, purchase["id"]))["status"] == "pending"
    # Within the tolerance it is accepted.
    assert (await pay.post_event(payload, timestamp=now - 290)).status_code == 200


async def test_signature_tolerance_follows_the_service_clock(pay: Instance) -> None:
    payload = msgspec.json.encode(event("customer.created", {"id": "cus_x"}))
    stamp = int(pay.clock.now().timestamp())
    pay.clock.advance(timedelta(seconds=301))
    response = await pay.post_event(payload, timestamp=stamp)
    assert response.status_code == 400


async def test_unknown_events_are_acknowledged_and_ignored(pay: Instance) -> None:
    response = await pay.post_event(event("invoice.paid", {"id": "in_1", "object": "invoice"}))
    assert response.status_code == 200
    assert response.json() == {"received": True}


async def test_signed_but_malformed_events_are_400(pay: Instance, db: asyncpg.Connection) -> None:
    assert (await pay.post_event(b"not json")).status_code == 400
    broken = event("payment_intent.succeeded", {"id": "pi_1", "amount": "lots"})
    response = await pay.post_event(broken)
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    # Rolled back: Stripe's retry will be processed once the payload is understood.
    assert await db.fetchval("SELECT count(*) FROM credits.stripe_events WHERE id = $1", broken["id"]) == 0


async def test_events_for_payments_that_are_not_ours_are_ignored(pay: Instance) -> None:
    stranger = {"id": str(uuid.uuid4()), "userId": "u-x", "packageId": "p", "priceEuroCents": 500}
    intent = payment_intent(f"pi_{uuid.uuid4().hex[:14]}", stranger)
    assert (
        await pay.post_event(event("payment_intent.succeeded", {**intent, "metadata": {}}))
    ).status_code == 200
    assert (await pay.post_event(event("charge.refunded", _charge(
        {"priceEuroCents": 500, "stripePaymentIntentId": intent["id"]}, refunded=500
    )))).status_code == 200  # fmt: skip


async def test_old_event_ids_are_pruned_by_the_registered_job(pay: Instance, db: asyncpg.Connection) -> None:
    from mana_credits.payments import tasks

    old, recent = f"evt_old_{uuid.uuid4().hex}", f"evt_new_{uuid.uuid4().hex}"
    await db.execute(
        "INSERT INTO credits.stripe_events (id, type, received_at) VALUES "
        "($1, 'x', now() - interval '91 days'), ($2, 'x', now() - interval '89 days')",
        old,
        recent,
    )
    [job] = tasks.jobs(pay.server.ctx)

    assert await job.run() >= 1  # type: ignore[operator]

    left = await db.fetch("SELECT id FROM credits.stripe_events WHERE id = ANY($1)", [old, recent])
    assert [row["id"] for row in left] == [recent]


async def test_growing_refunds_delivered_concurrently_reverse_exactly_the_refunded_part(
    pay: Instance, make_package: MakePackage, db: asyncpg.Connection
) -> None:
    user = pay.api.actor()
    purchase = await _completed(pay, user, await make_package(credits=500, price=500))
    refunds = [event("charge.refunded", _charge(purchase, refunded=cents)) for cents in (100, 200, 300, 400)]

    responses = await asyncio.gather(*[pay.post_event(refund) for refund in refunds * 2])

    assert [r.status_code for r in responses] == [200] * 8
    reversed_rows = [amount for kind, amount in await _ledger(db, user.id) if kind == "reversal"]
    assert sum(reversed_rows) == -400
    assert (await pay.api.balance(user))["balance"] == 100
    assert await audit(db) == []
