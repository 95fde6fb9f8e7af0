"""kill -9 of the real server (granian's main process and its worker, the whole process group) under write
load: keyed debits, gift redeems, the renewal job and signed Stripe webhooks, 10 rounds. After each restart
every request whose answer was lost is sent again with the same idempotency key or event id, and the renewal
job runs again (as its schedule would); then the ledger audit is clean, no key and no event had two effects,
and every acknowledged 2xx has its ledger row."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from mana_credits.db.pool import connect
from mana_credits.kit.idempotency import REPLAY_HEADER
from mana_credits.ledger.audit import audit
from mana_credits.payments import repository as payments
from tests.faults.conftest import OwnPostgres, ServerProcess, running
from tests.payments.stripe_fakes import WEBHOOK_SECRET, event, payment_intent, sign
from tests.support import SERVICE_KEY, Actor, Api, JwksServer, service_headers

pytestmark = pytest.mark.slow

ROUNDS = 10
DEBITS, ACCOUNTS, GIFTS, RENEWALS, PAYMENTS = 24, 6, 4, 4, 4
SERVICE = service_headers("faults")
# A bound, not a measure: a request still unanswered after this hangs.
CLIENT_TIMEOUT = 60


@dataclass
class Call:
    """One request of the load, sent again byte for byte (same key, same event) when its answer was lost."""

    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    stripe: bool = False  # signed as Stripe signs each delivery, with the time of sending
    answers: list[int] = field(default_factory=list)
    replayed: bool = False

    def request_headers(self) -> dict[str, str]:
        headers = {**self.headers, "Content-Type": "application/json"}
        if self.stripe:
            headers["Stripe-Signature"] = sign(self.body, int(time.time()), WEBHOOK_SECRET)
        return headers

    async def send(self, client: httpx.AsyncClient) -> bool:
        """True when the answer arrived; a transport error is the server dying under the request."""
        try:
            response = await client.post(self.path, content=self.body, headers=self.request_headers())
        except httpx.TransportError:
            return False
        self.answers.append(response.status_code)
        self.replayed = self.replayed or response.headers.get(REPLAY_HEADER) == "true"
        return True


@dataclass
class Round:
    debits: list[Call]
    redeems: dict[str, tuple[Actor, Call]]  # gift id → its redeemer and the redeem
    renewals: list[str]  # users with a subscription due
    payments: dict[str, list[Call]]  # purchase id → the deliveries of its event (a duplicate included)
    # Two overlapping runs of the renewal job.
    jobs: list[Call] = field(default_factory=lambda: [_renewal_run(), _renewal_run()])

    def calls(self) -> list[Call]:
        deliveries = [call for calls in self.payments.values() for call in calls]
        return [*self.debits, *(call for _, call in self.redeems.values()), *self.jobs, *deliveries]


def _renewal_run() -> Call:
    return Call("/api/v1/internal/sync/charge-recurring", headers=SERVICE)


def _json(body: object) -> bytes:
    return msgspec.json.encode(body)


async def _prepare(client: httpx.AsyncClient, api: Api, url: str, n: int) -> Round:
    """Accounts, gifts, due subscriptions and pending purchases for round `n`, made with the server up."""
    accounts = [f"k9-{n}-account-{i}" for i in range(ACCOUNTS)]
    renewals = [f"k9-{n}-sync-{i}" for i in range(RENEWALS)]
    buyers = [f"k9-{n}-buyer-{i}" for i in range(PAYMENTS)]
    creator = api.actor()
    for user in [*accounts, *renewals, creator.id]:
        await api.fund(user, 1000)
    debits = [
        Call(
            "/api/v1/internal/credits/use",
            _json(
                {"userId": accounts[i % ACCOUNTS], "amount": 1 + i % 3, "appId": "faults", "description": "-"}
            ),
            {**SERVICE, "Idempotency-Key": f"k9-{n}-debit-{i}"},
        )
        for i in range(DEBITS)
    ]
    redeems: dict[str, tuple[Actor, Call]] = {}
    for i in range(GIFTS):
        created = await client.post("/api/v1/gifts/", json={"totalCredits": 5 + i}, headers=creator.headers)
        assert created.status_code == 201, created.text
        gift = created.json()
        redeemer = api.actor()
        # Each redeemer behind its own address: attempts cut off by a kill count against it for a minute.
        headers = {
            **redeemer.headers,
            "Idempotency-Key": f"k9-{n}-redeem-{i}",
            "X-Forwarded-For": f"10.9.{n}.{i}",
        }
        redeem = Call(f"/api/v1/gifts/{gift['code']}/redeem", _json({"sourceAppId": "faults"}), headers)
        redeems[gift["id"]] = (redeemer, redeem)
    conn = await connect(url)
    try:
        for user in renewals:
            await conn.execute(
                "INSERT INTO credits.sync_subscriptions (user_id, active, next_charge_at, anchor_day, email) "
                "VALUES ($1, true, $2, 1, $3)",
                user,
                datetime.now(UTC) - timedelta(days=1),
                f"{user}@example.com",
            )
        package = (await payments.active_packages(conn))[0]
        purchases = [await payments.insert_purchase(conn, buyer, package, f"cus_{buyer}") for buyer in buyers]
    finally:
        await conn.close()
    deliveries: dict[str, list[Call]] = {}
    for purchase in purchases:
        intent = payment_intent(f"pi_{uuid.uuid4().hex}", msgspec.to_builtins(purchase))
        body = _json(event("payment_intent.succeeded", intent))
        # Stripe may deliver an event twice at once; both answers must be 200 and only one may credit.
        deliveries[str(purchase.id)] = [Call("/api/v1/webhooks/stripe", body, stripe=True) for _ in range(2)]
    return Round(debits, redeems, renewals, deliveries)


async def _load_and_kill(server: ServerProcess, calls: list[Call], kill_after: int) -> None:
    """Send every call at once and SIGKILL the server's process group once `kill_after` answers are in."""
    answered = 0
    enough = asyncio.Event()

    async def send(call: Call, client: httpx.AsyncClient) -> None:
        nonlocal answered
        if await call.send(client):
            answered += 1
            if answered >= kill_after:
                enough.set()

    async with httpx.AsyncClient(base_url=server.base, timeout=CLIENT_TIMEOUT) as client:
        load = asyncio.gather(*(send(call, client) for call in calls))
        if kill_after == 0:
            enough.set()
        waiting = asyncio.ensure_future(enough.wait())
        either: list[asyncio.Future[Any]] = [waiting, load]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        server.signal(signal.SIGKILL)
        await load
    assert await server.wait(30) is not None


async def _check(url: str, round_: Round) -> None:
    conn = await connect(url)
    try:
        assert await audit(conn) == []
        assert (
            await conn.fetch(
                "SELECT user_id, idempotency_key FROM credits.transactions WHERE idempotency_key IS NOT NULL "
                "GROUP BY 1, 2 HAVING count(*) > 1"
            )
            == []
        )
        # Every debit answered 200 (funds suffice): one usage row per key, on the key's account.
        debited = await conn.fetch(
            "SELECT idempotency_key, user_id, -amount AS amount FROM credits.transactions "
            "WHERE type = 'usage' AND idempotency_key = ANY($1::text[])",
            [call.headers["Idempotency-Key"] for call in round_.debits],
        )
        sent = [msgspec.json.decode(call.body) for call in round_.debits]
        assert sorted((row["idempotency_key"], row["user_id"], row["amount"]) for row in debited) == sorted(
            (call.headers["Idempotency-Key"], body["userId"], body["amount"])
            for call, body in zip(round_.debits, sent, strict=True)
        )
        # Each gift credited once, to its redeemer (the creator's own row is the debit).
        gifted = await conn.fetch(
            "SELECT metadata->>'giftCodeId' AS gift, user_id FROM credits.transactions "
            "WHERE type = 'gift' AND amount > 0 AND metadata->>'giftCodeId' = ANY($1::text[])",
            list(round_.redeems),
        )
        assert sorted((row["gift"], row["user_id"]) for row in gifted) == sorted(
            (gift, redeemer.id) for gift, (redeemer, _) in round_.redeems.items()
        )
        # Each due subscription charged once for its period and moved on to the next.
        renewed = await conn.fetch(
            "SELECT t.user_id, count(*) AS charges, s.next_charge_at > now() AS moved_on "
            "FROM credits.transactions t JOIN credits.sync_subscriptions s USING (user_id) "
            "WHERE t.type = 'usage' AND t.app_id = 'sync' AND t.user_id = ANY($1::text[]) "
            "GROUP BY t.user_id, s.next_charge_at",
            round_.renewals,
        )
        assert sorted(tuple(row) for row in renewed) == [(user, 1, True) for user in sorted(round_.renewals)]
        # Each purchase credited once (whatever number of deliveries), its events all recorded.
        bought = await conn.fetch(
            "SELECT metadata->>'purchaseId' AS purchase, count(*) AS n FROM credits.transactions "
            "WHERE type = 'purchase' AND metadata->>'purchaseId' = ANY($1::text[]) GROUP BY 1",
            list(round_.payments),
        )
        assert {row["purchase"]: row["n"] for row in bought} == dict.fromkeys(round_.payments, 1)
        events = {msgspec.json.decode(calls[0].body)["id"] for calls in round_.payments.values()}
        assert await conn.fetchval(
            "SELECT count(*) FROM credits.stripe_events WHERE id = ANY($1::text[])", list(events)
        ) == len(events)
    finally:
        await conn.close()


async def test_kill_9_under_write_load_then_retries_take_effect_once(
    own_postgres: tuple[OwnPostgres, Path], database_for_server: str, jwks: JwksServer
) -> None:
    _, folder = own_postgres
    env = {
        "MANA_AUTH_URL": jwks.url, "MANA_SERVICE_KEY": SERVICE_KEY, "MANA_CREDITS_SCHEDULER": "false",
        "STRIPE_SECRET_KEY": "sk_test_mana_credits", "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }  # fmt: skip
    sent = lost = replayed = 0
    async with running(database_for_server, folder / "data", **env) as server:
        for n in range(ROUNDS):
            async with httpx.AsyncClient(base_url=server.base, timeout=CLIENT_TIMEOUT) as client:
                round_ = await _prepare(client, Api(client, jwks), database_for_server, n)
            calls = round_.calls()
            # Killed at another moment each round: before any answer, after a few, after most.
            await _load_and_kill(server, calls, kill_after=(n * 7) % (len(calls) - 4))
            await server.start()
            unanswered = [call for call in calls if not call.answers]
            # A new client, new connections: the old ones died with the server.
            async with httpx.AsyncClient(base_url=server.base, timeout=CLIENT_TIMEOUT) as client:
                assert all(await asyncio.gather(*(call.send(client) for call in unanswered)))
                # The renewal job's next run finishes what a killed run left (its rows were rolled back).
                assert await _renewal_run().send(client)
            assert [call.answers[-1] for call in calls] == [200] * len(calls)
            await _check(database_for_server, round_)
            sent += len(calls)
            lost += len(unanswered)
            replayed += sum(call.replayed for call in unanswered)
    print(f"kill -9: {ROUNDS} rounds, {sent} requests, {lost} answers lost and retried, {replayed} replayed")
    assert lost > 0  # the kills did land mid-load
