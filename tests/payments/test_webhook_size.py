"""The webhook takes Stripe's largest events although other bodies are capped at 64 KiB."""

from __future__ import annotations

import msgspec

from tests.payments.conftest import Instance
from tests.payments.stripe_fakes import event


def _session(metadata: dict[str, str]) -> dict[str, object]:
    return {"id": "cs_big", "object": "checkout.session", "payment_status": "paid", "metadata": metadata}


async def test_a_large_stripe_event_is_accepted_and_a_huge_one_is_413(pay: Instance) -> None:
    # Stripe allows 50 metadata keys of up to 40 characters with values of up to 500 on an object;
    # an event carries the object plus, for some types, expanded lists: 300 KB is far beyond any of them.
    largest_metadata = {f"k{n:02d}" + "x" * 37: "v" * 500 for n in range(50)}
    typical = msgspec.json.encode(event("checkout.session.completed", _session(largest_metadata)))
    assert 25_000 < len(typical) < 64 * 1024
    padded = {**largest_metadata, "padding": "p" * 300_000}
    response = await pay.post_event(event("checkout.session.completed", _session(padded)))
    assert response.status_code == 200, response.status_code
    huge = {"padding": "p" * (2 * 1024 * 1024)}
    response = await pay.post_event(event("checkout.session.completed", _session(huge)))
    assert response.status_code == 413
