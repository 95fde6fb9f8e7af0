"""The Stripe reconciliation against the Stripe test server (localstripe behind the stub, no webhooks
registered): lost payment and refund webhooks are found, applied once by --fix, and neither a second
--fix nor the late webhook changes anything; what no event can settle is left for a person."""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

from mana_credits.books import tasks
from mana_credits.ledger.audit import audit
from tests.books.conftest import Books
from tests.payments.conftest import STRIPE_KEY
from tests.test_cli import run_cli


async def _reconcile(books: Books, *flags: str) -> tuple[int, str]:
    today = datetime.now(ZoneInfo("Europe/Berlin")).strftime("%Y-%m-%d")
    env = {"DATABASE_URL": books.url, "STRIPE_SECRET_KEY": STRIPE_KEY, "STRIPE_API_BASE": books.stub.url,
           "COLUMNS": "250"}  # fmt: skip
    code, out = await run_cli("stripe", "reconcile", "--since", today, *flags, env=env)
    print(out)
    return code, out


async def _rows(books: Books, type_: str) -> int:
    return int(await books.db.fetchval("SELECT count(*) FROM credits.transactions WHERE type = $1", type_))


async def _statement_reconciles(books: Books) -> None:
    month = datetime.now(ZoneInfo("Europe/Berlin")).strftime("%Y-%m")
    code, out = await run_cli("statement", "--month", month, env={"DATABASE_URL": books.url})
    assert code == 0, out


async def test_a_payment_whose_webhook_never_arrived_is_credited_once(books: Books) -> None:
    await books.complete_checkout(await books.checkout("alice"))  # delivered: fine
    lost_intent = await books.intent("bob")  # paid at localstripe, no webhook
    lost_session = await books.checkout("carol")
    session = await books.complete_checkout(lost_session, deliver=False)

    code, out = await _reconcile(books)
    assert code == 1
    assert out.count("paid but not credited") == 2
    assert lost_intent["stripePaymentIntentId"] in out and lost_session["id"] in out
    assert "fixable with --fix" in out and "2 discrepancies, 0 fixed, 2 open" in out
    assert (await books.balance("bob"), await books.balance("carol")) == (0, 0)

    code, out = await _reconcile(books, "--fix")
    assert code == 0, out
    assert "2 discrepancies, 2 fixed, 0 open" in out
    assert (await books.balance("alice"), await books.balance("bob"), await books.balance("carol")) == (
        500, 500, 500,
    )  # fmt: skip
    assert await _rows(books, "purchase") == 3

    code, out = await _reconcile(books, "--fix")
    assert code == 0 and "0 discrepancies" in out
    # The webhooks arrive late, after the fix (Stripe's own event ids): nothing changes.
    intent = await books.sdk.v1.payment_intents.retrieve_async(lost_intent["stripePaymentIntentId"])
    await books.deliver("payment_intent.succeeded", intent.to_dict())
    await books.deliver("checkout.session.completed", session)
    assert (await books.balance("bob"), await books.balance("carol")) == (500, 500)
    assert await _rows(books, "purchase") == 3
    assert await audit(books.db) == []
    await _statement_reconciles(books)


async def test_a_refund_and_a_lost_dispute_without_their_webhooks_are_reversed_once(books: Books) -> None:
    refunded = await books.intent("dave")
    intent = await books.sdk.v1.payment_intents.retrieve_async(refunded["stripePaymentIntentId"])
    await books.deliver("payment_intent.succeeded", intent.to_dict())
    disputed = await books.checkout("erin")
    session = await books.complete_checkout(disputed)
    refund = await books.sdk.v1.refunds.create_async(
        params={"payment_intent": refunded["stripePaymentIntentId"], "amount": 200}
    )  # no webhook
    books.stub.add_dispute(session["payment_intent"], 500, "lost")  # no webhook
    assert (await books.balance("dave"), await books.balance("erin")) == (500, 500)

    code, out = await _reconcile(books)
    assert code == 1 and out.count("refund or lost dispute not reversed") == 2

    code, out = await _reconcile(books, "--fix")
    assert code == 0, out
    assert (await books.balance("dave"), await books.balance("erin")) == (300, 0)
    assert await _rows(books, "reversal") == 2

    code, out = await _reconcile(books, "--fix")
    assert code == 0 and "0 discrepancies" in out
    charge = {"id": refund.charge, "object": "charge", "amount": 500, "amount_refunded": 200,
              "payment_intent": refunded["stripePaymentIntentId"]}  # fmt: skip
    await books.deliver("charge.refunded", charge)  # late
    assert (await books.balance("dave"), await books.balance("erin")) == (300, 0)
    assert await _rows(books, "reversal") == 2
    assert await audit(books.db) == []
    await _statement_reconciles(books)


async def test_what_no_event_can_settle_is_left_for_a_person(books: Books) -> None:
    # Credited, but Stripe took no money: an event for a session Stripe never completed.
    forged = await books.checkout("frank")
    await books.deliver("checkout.session.completed", {
        "id": await books.session_of(forged), "object": "checkout.session", "payment_status": "paid",
        "amount_total": 500, "currency": "eur", "payment_intent": f"pi_{uuid.uuid4().hex[:24]}",
        "metadata": {"purchaseId": forged["id"], "userId": forged["userId"]},
    })  # fmt: skip
    short = await books.checkout("gina")
    books.stub.complete_session(await books.session_of(short), amount=400)  # paid less than the price
    twice = await books.checkout("ida")
    await books.complete_checkout(twice)  # credited; then the same purchase is paid again, by a PaymentIntent
    again = await books.sdk.v1.payment_intents.create_async(params={
        "amount": 500, "currency": "eur", "payment_method": "pm_card_visa", "confirm": True,
        "metadata": {"purchaseId": twice["id"], "userId": twice["userId"]},
    })  # fmt: skip
    assert again.status == "succeeded"

    code, out = await _reconcile(books, "--fix")

    assert code == 1
    assert "credited but not paid" in out and forged["id"] in out
    assert "amount or currency mismatch" in out and "paid 400 eur" in out
    assert "paid twice for one purchase" in out and again.id in out
    assert out.count("for a person") == 3 and "3 discrepancies, 0 fixed, 3 open" in out
    assert (await books.balance("frank"), await books.balance("gina"), await books.balance("ida")) == (
        500,
        0,
        500,
    )


async def test_the_daily_job_fixes_a_lost_webhook_and_exports_what_it_found(books: Books) -> None:
    await books.intent("hana")  # no webhook
    ctx = books.shop.server.ctx
    [job] = tasks.jobs(ctx)
    assert job.name == "stripe.reconcile" and job.interval_seconds == 86400

    assert await job.run() == 0
    assert await books.balance("hana") == 500
    metrics = (await books.client.get("/metrics")).text
    assert 'mana_credits_stripe_discrepancies{kind="paid_not_credited",state="fixed"} 1.0' in metrics
    assert await job.run() == 0 and await books.balance("hana") == 500
    without_keys = type(ctx)(
        **{**vars(ctx), "settings": ctx.settings.model_copy(update={"STRIPE_SECRET_KEY": None})}
    )
    assert tasks.jobs(without_keys) == []


async def test_without_stripe_keys_reconcile_refuses(books: Books) -> None:
    code, out = await run_cli("stripe", "reconcile", "--since", "2026-11-01",
                              env={"DATABASE_URL": books.url, "STRIPE_SECRET_KEY": ""})  # fmt: skip
    assert code == 2 and "STRIPE_SECRET_KEY" in out
