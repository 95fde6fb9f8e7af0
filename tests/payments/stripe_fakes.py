"""Stripe-compatible servers for the payments tests: localstripe in a subprocess, and a small stub for
what localstripe lacks (Checkout Sessions, 5xx answers). Plus Stripe's webhook signing scheme."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
import threading
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from tests.support import StubHandler, ThreadedStub

WEBHOOK_SECRET = "whsec_test_mana_credits"

# localstripe binds all interfaces from its CLI and reloads a shared pickle in the system temp folder:
# serve its app on 127.0.0.1 instead, start from an empty store and never write that pickle.
_LOCALSTRIPE = """
import socket
from aiohttp import web
from localstripe.resources import store
from localstripe.server import app

store.dump_to_disk = lambda: None
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
web.run_app(app, sock=sock, print=None)
"""


class LocalStripe:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _LOCALSTRIPE], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        assert self.process.stdout is not None
        port = int(self.process.stdout.readline())
        self.url = f"http://127.0.0.1:{port}"

    def register_webhook(self, url: str, secret: str = WEBHOOK_SECRET) -> None:
        response = httpx.post(f"{self.url}/_config/webhooks/mana", data={"url": url, "secret": secret})
        response.raise_for_status()

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        if self.process.stdout is not None:  # the pipe the port was read from
            self.process.stdout.close()


class StripeStub(ThreadedStub):
    """Answers `POST /v1/customers` and `POST /v1/checkout/sessions` like Stripe, and records each
    request (path, form fields, headers); `fail_with` makes every answer that status instead, and
    clearing `release` holds every answer back until it is set again (a slow Stripe).

    With `upstream` (a localstripe), it answers Checkout Sessions itself (localstripe has none) and hands
    every other request to localstripe: one Stripe test server for both ways to pay. It keeps the sessions
    it made (`complete_session` pays one, with a PaymentIntent of its own) and disputes (`add_dispute`),
    and answers the list endpoints (PaymentIntents, refunds, Checkout Sessions, disputes) as Stripe does:
    newest first, filtered by `created[gte]`/`created[lt]`, `status` and `payment_intent`, paged by `limit`
    and `starting_after` (localstripe pages but filters by nothing)."""

    LISTS = ("/v1/payment_intents", "/v1/refunds", "/v1/checkout/sessions", "/v1/disputes")

    def __init__(self, upstream: str | None = None) -> None:
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self.fail_with: int | None = None
        self.release = threading.Event()
        self.release.set()
        self.upstream = upstream
        self.sessions: dict[str, dict[str, Any]] = {}
        self.intents: dict[str, dict[str, Any]] = {}  # the Checkout Sessions' PaymentIntents
        self.disputes: list[dict[str, Any]] = []
        self.lists_served = 0
        stub = self

        class Handler(StubHandler):
            def do_POST(self) -> None:
                body = self.read_body()
                if upstream and not self.path.startswith("/v1/checkout/sessions"):
                    return self.forward(body)
                form = dict(parse_qsl(body.decode()))
                stub.requests.append((self.path, form, dict(self.headers)))
                stub.release.wait(timeout=30)
                self.send_json(*stub.answer(self.path, form))

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path in StripeStub.LISTS:
                    return self.send_json(200, stub.list_page(url.path, dict(parse_qsl(url.query))))
                self.forward(b"")

            def do_DELETE(self) -> None:
                self.forward(b"")

            def forward(self, body: bytes) -> None:
                if upstream is None:
                    return self.send_json(404, {"error": {"type": "invalid_request_error"}})
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in {"host", "content-length"}
                }
                answer = httpx.request(self.command, upstream + self.path, content=body, headers=headers)
                self.send_raw(answer.status_code, answer.content)

        self.serve(Handler)

    def answer(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if self.fail_with is not None:
            return self.fail_with, {"error": {"type": "api_error", "message": "stub failure"}}
        if path == "/v1/customers":
            return 200, {
                "id": f"cus_{uuid.uuid4().hex[:14]}",
                "object": "customer",
                "email": form.get("email"),
            }
        if path == "/v1/checkout/sessions":
            session_id = f"cs_test_{uuid.uuid4().hex}"
            session = {
                "id": session_id,
                "object": "checkout.session",
                "url": f"https://checkout.stripe.test/c/pay/{session_id}",
                "payment_status": "unpaid",
                "status": "open",
                "amount_total": int(form["line_items[0][price_data][unit_amount]"]),
                "currency": form["line_items[0][price_data][currency]"],
                "payment_intent": None,
                "client_reference_id": form.get("client_reference_id"),
                "created": int(time.time()),
                "metadata": _nested(form, "metadata"),
                "_intent_metadata": _nested(form, "payment_intent_data[metadata]"),
            }
            self.sessions[session_id] = session
            return 200, _public(session)
        return 404, {"error": {"type": "invalid_request_error", "message": f"no route {path}"}}

    def complete_session(self, session_id: str, *, amount: int | None = None) -> dict[str, Any]:
        """The payer paid: the session is complete and paid, by a succeeded PaymentIntent of its own."""
        session = self.sessions[session_id]
        paid = session["amount_total"] if amount is None else amount
        intent_id = f"pi_{uuid.uuid4().hex[:24]}"
        self.intents[intent_id] = {
            "id": intent_id, "object": "payment_intent", "amount": paid, "amount_received": paid,
            "currency": session["currency"], "status": "succeeded", "created": int(time.time()),
            "metadata": session["_intent_metadata"],
        }  # fmt: skip
        session.update(status="complete", payment_status="paid", payment_intent=intent_id, amount_total=paid)
        return _public(session)

    def add_dispute(self, payment_intent: str, amount: int, status: str = "lost") -> dict[str, Any]:
        dispute = {
            "id": f"dp_{uuid.uuid4().hex[:14]}", "object": "dispute", "amount": amount, "currency": "eur",
            "charge": f"ch_{uuid.uuid4().hex[:14]}", "payment_intent": payment_intent, "status": status,
            "created": int(time.time()),
        }  # fmt: skip
        self.disputes.append(dispute)
        return dispute

    def list_page(self, path: str, query: dict[str, str]) -> dict[str, Any]:
        """A Stripe list page: `{"object": "list", "url", "has_more", "data"}`, newest first."""
        self.lists_served += 1
        if path == "/v1/payment_intents":
            items = self._upstream_all(path) + list(self.intents.values())
        elif path == "/v1/refunds":
            items = self._upstream_all(path)
        elif path == "/v1/checkout/sessions":
            items = [_public(session) for session in self.sessions.values()]
        else:
            items = list(self.disputes)
        since, before = int(query.get("created[gte]", 0)), int(query.get("created[lt]", 2**40))
        items = [item for item in items if since <= item["created"] < before]
        for name in ("status", "payment_intent"):
            if name in query:
                items = [item for item in items if item.get(name) == query[name]]
        items.sort(key=lambda item: (item["created"], item["id"]), reverse=True)
        if "starting_after" in query:
            ids = [item["id"] for item in items]
            items = items[ids.index(query["starting_after"]) + 1 :]
        limit = int(query.get("limit", 10))
        return {"object": "list", "url": path, "has_more": len(items) > limit, "data": items[:limit]}

    def _upstream_all(self, path: str) -> list[dict[str, Any]]:
        assert self.upstream is not None
        found: list[dict[str, Any]] = []
        while True:
            query = {"limit": "100", **({"starting_after": found[-1]["id"]} if found else {})}
            page = httpx.get(self.upstream + path, params=query, headers={"Authorization": "Bearer sk_test"})
            page.raise_for_status()
            found += page.json()["data"]
            if not page.json()["has_more"]:
                return found


def _nested(form: dict[str, str], prefix: str) -> dict[str, str]:
    """Stripe's form encoding of a hash: `prefix[key]=value`."""
    return {key[len(prefix) + 1 : -1]: value for key, value in form.items() if key.startswith(prefix + "[")}


def _public(session: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in session.items() if not key.startswith("_")}


def sign(payload: bytes, timestamp: int, secret: str = WEBHOOK_SECRET) -> str:
    """Stripe's scheme: `t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event(type_: str, obj: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": type_,
        "created": int(time.time()),
        "data": {"object": obj},
    }


def payment_intent(
    pi_id: str, purchase: dict[str, Any], *, amount: int | None = None, currency: str = "eur",
    status: str = "succeeded",
) -> dict[str, Any]:  # fmt: skip
    paid = purchase["priceEuroCents"] if amount is None else amount
    return {
        "id": pi_id,
        "object": "payment_intent",
        "amount": paid,
        "amount_received": paid if status == "succeeded" else 0,
        "currency": currency,
        "status": status,
        "metadata": {
            "userId": purchase["userId"],
            "packageId": purchase["packageId"],
            "purchaseId": purchase["id"],
        },
    }
