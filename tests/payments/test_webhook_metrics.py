"""Webhook events by type and result, and their lag behind Stripe's `created`, on GET /metrics."""

from __future__ import annotations

import msgspec

from tests.ops.test_metrics import scrape, value
from tests.payments.conftest import Instance
from tests.payments.stripe_fakes import event, payment_intent
from tests.payments.test_purchase import MakePackage


async def test_webhook_events_counted_by_type_and_result(pay: Instance, make_package: MakePackage) -> None:
    before = await scrape(pay.client)
    purchase = await pay.bought(pay.api.actor(), await make_package())
    succeeded = event("payment_intent.succeeded", payment_intent(purchase["stripePaymentIntentId"], purchase))
    payload = msgspec.json.encode(succeeded)
    assert (await pay.post_event(payload)).status_code == 200
    assert (await pay.post_event(payload)).status_code == 200
    after = await scrape(pay.client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    name = "mana_credits_webhook_events_total"
    assert delta(name, type="payment_intent.succeeded", result="processed") == 1
    assert delta(name, type="payment_intent.succeeded", result="duplicate") == 1
    assert delta("mana_credits_webhook_lag_seconds_count") >= 2
