"""Money that comes back to the buyer, exactly as Stripe reports it: a dispute's credits follow its status
(an inquiry takes nothing; closed without loss gives back), whatever order the events arrive in; a refund
that fails gives the credits back.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from mana_credits.ledger.audit import audit
from mana_credits.payments.schemas import Package
from tests.payments.conftest import Instance
from tests.payments.stripe_fakes import event
from tests.support import Actor

MakePackage = Callable[..., Awaitable[Package]]


async def _completed(pay: Instance, user: Actor, package: Package) -> dict[str, Any]:
    purchase = await pay.bought(user, package)
    await pay.pay(purchase)
    return await pay.purchase(user, purchase["id"])


def _dispute(purchase: dict[str, Any], status: str, dispute_id: str, amount: int = 900) -> dict[str, Any]:
    return {
        "id": dispute_id, "object": "dispute", "amount": amount, "currency": "eur", "charge": "ch_x",
        "payment_intent": purchase["stripePaymentIntentId"], "status": status,
    }  # fmt: skip


async def _balance_after(pay: Instance, make_package: MakePackage, *steps: tuple[str, str]) -> int:
    user = pay.api.actor()
    purchase = await _completed(pay, user, await make_package(credits=1000, price=900))
    dispute_id = f"dp_{uuid.uuid4().hex[:14]}"
    for event_type, status in steps:
        response = await pay.post_event(event(event_type, _dispute(purchase, status, dispute_id)))
        assert response.status_code == 200, response.text
    return (await pay.api.balance(user))["balance"]


async def test_an_inquiry_takes_nothing(pay: Instance, make_package: MakePackage) -> None:
    created = ("charge.dispute.created", "warning_needs_response")
    assert await _balance_after(pay, make_package, created) == 1000
    review = ("charge.dispute.updated", "warning_under_review")
    assert await _balance_after(pay, make_package, created, review) == 1000


async def test_an_inquiry_closed_without_loss_leaves_the_credits(
    pay: Instance, make_package: MakePackage
) -> None:
    steps = [
        ("charge.dispute.created", "warning_needs_response"),
        ("charge.dispute.closed", "warning_closed"),
    ]
    assert await _balance_after(pay, make_package, *steps) == 1000


async def test_an_inquiry_that_becomes_a_chargeback_takes_the_credits(
    pay: Instance, make_package: MakePackage
) -> None:
    steps = [
        ("charge.dispute.created", "warning_needs_response"),
        ("charge.dispute.updated", "needs_response"),
    ]
    assert await _balance_after(pay, make_package, *steps) == 0
    lost = [*steps, ("charge.dispute.closed", "lost")]
    assert await _balance_after(pay, make_package, *lost) == 0
    won = [*steps, ("charge.dispute.updated", "under_review"), ("charge.dispute.closed", "won")]
    assert await _balance_after(pay, make_package, *won) == 1000


@pytest.mark.parametrize(
    ("final", "balance"), [("won", 1000), ("lost", 0), ("warning_closed", 1000), ("prevented", 1000)]
)
async def test_the_outcome_does_not_depend_on_arrival_order(
    pay: Instance, make_package: MakePackage, db: asyncpg.Connection, final: str, balance: int
) -> None:
    opened = "warning_needs_response" if final == "warning_closed" else "needs_response"
    steps = [("charge.dispute.created", opened), ("charge.dispute.closed", final)]
    for order in itertools.permutations(steps):
        assert await _balance_after(pay, make_package, *order) == balance, order
    assert await audit(db) == []


def _refund(purchase: dict[str, Any], refund_id: str, status: str, amount: int) -> dict[str, Any]:
    return {
        "id": refund_id, "object": "refund", "amount": amount, "currency": "eur", "charge": "ch_x",
        "payment_intent": purchase["stripePaymentIntentId"], "status": status,
    }  # fmt: skip


def _charge(purchase: dict[str, Any], refunded: int) -> dict[str, Any]:
    return {
        "id": "ch_x", "object": "charge", "amount": purchase["priceEuroCents"], "amount_refunded": refunded,
        "currency": "eur", "refunded": refunded == purchase["priceEuroCents"],
        "payment_intent": purchase["stripePaymentIntentId"],
    }  # fmt: skip


@pytest.mark.parametrize("failure", ["charge.refund.updated", "refund.failed", "refund.updated"])
async def test_a_failed_refund_gives_the_credits_back(
    pay: Instance, make_package: MakePackage, db: asyncpg.Connection, failure: str
) -> None:
    user = pay.api.actor()
    purchase = await _completed(pay, user, await make_package(credits=1000, price=1000))
    refund_id = f"re_{uuid.uuid4().hex[:14]}"
    await pay.post_event(event("charge.refunded", _charge(purchase, 400)))
    assert (await pay.api.balance(user))["balance"] == 600
    response = await pay.post_event(event(failure, _refund(purchase, refund_id, "failed", 400)))
    assert response.status_code == 200, response.text
    assert (await pay.api.balance(user))["balance"] == 1000
    # The same failure again, or the stale refund event after it, changes nothing.
    await pay.post_event(event(failure, _refund(purchase, refund_id, "failed", 400)))
    await pay.post_event(event("charge.refunded", _charge(purchase, 400)))
    await pay.post_event(event("charge.refund.updated", _refund(purchase, refund_id, "succeeded", 400)))
    assert (await pay.api.balance(user))["balance"] == 1000
    assert await audit(db) == []


async def test_a_refund_failure_delivered_first_takes_nothing(
    pay: Instance, make_package: MakePackage, db: asyncpg.Connection
) -> None:
    user = pay.api.actor()
    purchase = await _completed(pay, user, await make_package(credits=1000, price=1000))
    refund_id = f"re_{uuid.uuid4().hex[:14]}"
    await pay.post_event(event("refund.failed", _refund(purchase, refund_id, "failed", 300)))
    await pay.post_event(event("charge.refunded", _charge(purchase, 300)))
    assert (await pay.api.balance(user))["balance"] == 1000
    assert await audit(db) == []
