"""The Stripe reconciliation: what Stripe was paid and returned against our purchases and ledger rows.

Read from Stripe (the SDK's auto-paging lists): succeeded PaymentIntents, completed Checkout Sessions,
refunds and disputes since a date. Found: paid but not credited (a lost webhook), credited but not paid,
amount or currency mismatches, refunds and lost disputes not yet reversed, reversals Stripe does not know.
`fix` applies a missing effect by handing Stripe's object, as the event Stripe would have sent, to the
webhook intake (`payments.webhooks.process`, in a transaction of its own), so the same exactly-once rules
hold (the purchase's claim, the returned totals that only move the difference): a later webhook or a second
fix changes nothing. What no event can settle (credited but not paid, a mismatch, a second payment) is left
for a person.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec

from mana_credits.books import repository
from mana_credits.db.pool import Conn
from mana_credits.kit import money_metrics
from mana_credits.payments import repository as payments_repository
from mana_credits.payments import webhooks
from mana_credits.payments.repository import DISPUTE_TAKES, REFUND_UNDONE
from mana_credits.payments.schemas import PurchaseReturns
from mana_credits.payments.service import reversal_target
from mana_credits.payments.stripe_client import CURRENCY, StripeGateway

# Stripe's clock and the database's may differ a little: read Stripe from a day earlier than our purchases,
# so a payment made at the boundary is not reported as missing.
MARGIN = timedelta(days=1)

KINDS = {
    "paid_not_credited": "paid but not credited (a lost webhook)",
    "credited_not_paid": "credited but not paid",
    "amount_mismatch": "amount or currency mismatch",
    "paid_unknown_purchase": "paid for a purchase we do not have",
    "paid_twice": "paid twice for one purchase",
    "return_not_reversed": "refund or lost dispute not reversed",
    "reversal_unknown": "reversal Stripe does not know",
}


class Finding(msgspec.Struct, kw_only=True):
    kind: str
    stripe_id: str
    purchase_id: str | None
    user_id: str | None
    detail: str
    fixable: bool
    fixed: bool = False


class Report(msgspec.Struct, kw_only=True):
    since: datetime
    fixing: bool  # fixes were applied (`--fix`)
    seen: dict[str, int]  # Stripe objects read, by list
    findings: list[Finding]

    @property
    def open(self) -> list[Finding]:
        return [finding for finding in self.findings if not finding.fixed]


Tick = Callable[[str], None]


async def reconcile(
    conn: Conn, stripe: StripeGateway, since: datetime, *, fix: bool, tick: Tick = lambda _: None
) -> Report:
    """Compare, and with `fix` apply what is missing; the discrepancies also go to the metrics."""
    seen: Counter[str] = Counter()
    stamp = int((since - MARGIN).timestamp())

    def counted(name: str) -> None:
        seen[name] += 1
        tick(name)

    payments = _Payments()
    async for item in stripe.listed("payment_intents", created={"gte": stamp}):
        counted("payment_intents")
        if item.get("status") == "succeeded":
            await _payment(conn, payments, "payment_intent.succeeded", item, fix=fix)
    async for item in stripe.listed("checkout.sessions", created={"gte": stamp}, status="complete"):
        counted("checkout_sessions")
        if item.get("payment_status") == "paid":
            await _payment(conn, payments, "checkout.session.completed", item, fix=fix)
    findings = [finding for finding in payments.by_purchase.values() if finding is not None] + payments.strays
    credited = await repository.credited_since(conn, since)
    for ours in credited:
        if ours.id not in payments.by_purchase:
            detail = f"{ours.credits} credits for {ours.price_euro_cents} cents, no payment at Stripe"
            findings.append(_finding("credited_not_paid", ours.stripe_payment_intent_id or "-", ours, detail))
    touched = {
        p.stripe_payment_intent_id for p in credited if p.credits_reversed and p.stripe_payment_intent_id
    }
    for resource in ("refunds", "disputes"):
        async for item in stripe.listed(resource, created={"gte": stamp}):
            counted(resource)
            if item.get("payment_intent"):
                touched.add(item["payment_intent"])
    for intent in sorted(touched):
        found = await _returns(conn, stripe, intent, fix=fix, counted=counted)
        findings += [found] if found else []
    _export(findings)
    return Report(since=since, fixing=fix, seen=dict(seen), findings=findings)


def _finding(
    kind: str, stripe_id: str, ours: PurchaseReturns | None, detail: str, fixable: bool = False
) -> Finding:
    return Finding(
        kind=kind, stripe_id=stripe_id, purchase_id=str(ours.id) if ours else None,
        user_id=ours.user_id if ours else None, detail=detail, fixable=fixable,
    )  # fmt: skip


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(value) if isinstance(value, str) and value else None
    except ValueError:
        return None


@dataclass
class _Payments:
    by_purchase: dict[UUID, Finding | None] = field(default_factory=dict)  # paid, with what is wrong
    strays: list[Finding] = field(default_factory=list)  # payments that are not one purchase's first
    intents: set[str] = field(default_factory=set)


async def _payment(
    conn: Conn, payments: _Payments, event_type: str, item: dict[str, Any], *, fix: bool
) -> None:
    """One payment Stripe took: find its purchase and say what is wrong with it, fixing what can be."""
    metadata = item.get("metadata") or {}
    session = event_type.startswith("checkout.")
    intent = item.get("payment_intent") if session else item["id"]
    if intent in payments.intents:
        return  # a Checkout Session and its PaymentIntent are one payment
    if intent:
        payments.intents.add(intent)
    found = await payments_repository.find_purchase(
        conn,
        payment_intent_id=intent,
        checkout_session_id=item["id"] if session else None,
        purchase_id=_uuid(metadata.get("purchaseId") or item.get("client_reference_id")),
    )
    if found is None:
        if metadata.get("purchaseId"):  # ours by its metadata, yet no such purchase
            payments.strays.append(
                _finding("paid_unknown_purchase", item["id"], None, f"purchaseId {metadata['purchaseId']}")
            )
        return  # else another product on the same Stripe account
    ours = await repository.purchase(conn, found.id)
    amount = item.get("amount_total") if session else item.get("amount_received") or item.get("amount")
    currency = str(item.get("currency") or "")
    known = ours.stripe_payment_intent_id if ours.status == "completed" else None
    if found.id in payments.by_purchase or (intent and known and known != intent):
        detail = f"another {amount} {currency} for a purchase paid by {known or 'a payment listed before'}"
        payments.strays.append(_finding("paid_twice", item["id"], ours, detail))
        return
    paid = payments.by_purchase
    if amount != ours.price_euro_cents or currency.lower() != CURRENCY:
        detail = f"paid {amount} {currency}, the purchase costs {ours.price_euro_cents} {CURRENCY}"
        paid[found.id] = _finding("amount_mismatch", item["id"], ours, detail)
        return
    if ours.status == "completed":
        paid[found.id] = None
        return
    detail = f"paid {amount} {currency}, purchase {ours.status}: {ours.credits} credits due"
    finding = _finding("paid_not_credited", item["id"], ours, detail, fixable=True)
    if fix:
        await _deliver(conn, event_type, item, f"reconcile:{item['id']}")
        finding.fixed = (await repository.purchase(conn, found.id)).status == "completed"
    paid[found.id] = finding


async def _returns(
    conn: Conn, stripe: StripeGateway, intent: str, *, fix: bool, counted: Tick
) -> Finding | None:
    """The money Stripe returned on one PaymentIntent (all its refunds and disputes) against the credits
    its purchase has reversed."""
    found = await payments_repository.find_purchase(conn, payment_intent_id=intent)
    if found is None or found.status != "completed":
        return None  # not ours, or not credited (then the payment is the finding)
    refunds = [item async for item in stripe.listed("refunds", payment_intent=intent)]
    disputes = [item async for item in stripe.listed("disputes", payment_intent=intent)]
    for _ in refunds + disputes:
        counted("returns_of_a_payment")
    refunded = sum(item["amount"] for item in refunds)
    failed = sum(item["amount"] for item in refunds if item["status"] in REFUND_UNDONE)
    disputed = sum(item["amount"] for item in disputes if item["status"] in DISPUTE_TAKES)
    ours = await repository.purchase(conn, found.id)
    target = reversal_target(ours.price_euro_cents, ours.credits, refunded, failed, disputed)
    if target == ours.credits_reversed:
        return None
    money = f"Stripe returned {refunded - failed} cents refunded, {disputed} disputed"
    detail = f"{money}: {target} credits to reverse, {ours.credits_reversed} reversed"
    if target > ours.credits_reversed:
        finding = _finding("return_not_reversed", intent, ours, detail, fixable=True)
    else:  # Stripe knows less: a won dispute or failed refund we missed applies; no return at all cannot
        finding = _finding("reversal_unknown", intent, ours, detail, fixable=bool(refunds or disputes))
    if fix and finding.fixable:
        await _apply_returns(conn, intent, refunds, disputes, refunded)
        finding.fixed = (await repository.purchase(conn, found.id)).credits_reversed == target
    return finding


async def _apply_returns(
    conn: Conn, intent: str, refunds: list[dict[str, Any]], disputes: list[dict[str, Any]], refunded: int
) -> None:
    """The events Stripe sends for these returns: each dispute's and refund's state, then the charge's
    refunded total."""
    for item in disputes:
        await _deliver(conn, "charge.dispute.updated", item, f"reconcile:{item['id']}:{item['status']}")
    for item in refunds:
        await _deliver(conn, "refund.updated", item, f"reconcile:{item['id']}:{item['status']}")
    if refunds:
        charge = {"id": refunds[0].get("charge") or intent, "object": "charge", "amount_refunded": refunded,
                  "payment_intent": intent}  # fmt: skip
        await _deliver(conn, "charge.refunded", charge, f"reconcile:{intent}:refunded:{refunded}")


async def _deliver(conn: Conn, event_type: str, obj: dict[str, Any], event_id: str) -> None:
    event = webhooks.Event(id=event_id, type=event_type, data=webhooks.EventData(object=obj))
    async with conn.transaction():
        fresh = await webhooks.process(conn, event)
    money_metrics.WEBHOOK_EVENTS.labels(event_type, "reconciled" if fresh else "duplicate").inc()


def _export(findings: list[Finding]) -> None:
    for kind in KINDS:
        for state, fixed in (("open", False), ("fixed", True)):
            count = sum(1 for item in findings if item.kind == kind and item.fixed is fixed)
            money_metrics.STRIPE_DISCREPANCIES.labels(kind, state).set(count)
