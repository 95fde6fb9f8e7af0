"""Nobody without credentials stops the service with sockets: 2,000 connections that send nothing and 500
requests whose body never arrives (headers, then 1 byte of a declared 1,000), all held open, while a
normal client's /health and debit are answered; then the server closes every one of them itself once its
timeout passes. Before, granian served 1,024 connections a worker and never closed an idle one or a
stalled body: /health went unanswered for as long as the sockets were held. Loopback only, bounded."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mana_credits.kit.deadline import BODY_SECONDS
from mana_credits.server import HEADER_READ_MS
from tests.faults.conftest import OwnPostgres, running
from tests.support import SERVICE_KEY, service_headers

pytestmark = pytest.mark.slow

IDLE, SLOW_BODIES = 2000, 500
ANSWER_SECONDS = 5  # the bound the issue names for a noisy 2-core machine; with the bug: never
# The server's own timeouts plus a margin for a busy machine: every attacker socket is closed by then.
CLOSED_WITHIN = HEADER_READ_MS / 1000 + BODY_SECONDS + 15
# Lane and route paths that read a body before any credential is checked (the webhook checks a signature
# over the body; the internal debit lane reads the body before it looks at the key).
SLOW_PATHS = ["/api/v1/internal/credits/use", "/api/v1/webhooks/stripe", "/api/v1/credits/use"]


@pytest.fixture
def enough_files() -> Iterator[None]:
    """The attack needs about 2,600 descriptors here (and the server as many, inherited): raise the soft
    limit for this process, put it back after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = IDLE + SLOW_BODIES + 500
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"needs {needed} open files, the hard limit (ulimit -Hn) is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Attacker:
    """One held socket: `opened` once connected and its bytes sent, `closed_by_server` at EOF."""

    def __init__(self, port: int, payload: bytes) -> None:
        self.port, self.payload = port, payload
        self.opened = asyncio.Event()
        self.answer = b""
        self.closed_at: float | None = None
        self.failed = False

    async def run(self, give_up: asyncio.Event) -> None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 10)
        except (OSError, TimeoutError):
            self.failed = True
            self.opened.set()
            return
        try:
            writer.write(self.payload)
            await writer.drain()
            self.opened.set()
            reading = asyncio.ensure_future(self._read_to_eof(reader))
            stop = asyncio.ensure_future(give_up.wait())
            await asyncio.wait([reading, stop], return_when=asyncio.FIRST_COMPLETED)
            reading.cancel()
            stop.cancel()
        except OSError:
            self.failed = True
            self.opened.set()
        finally:
            writer.close()

    async def _read_to_eof(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError):
            while chunk := await reader.read(4096):
                self.answer += chunk
        self.closed_at = time.monotonic()


def slow_body(path: str) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += "Stripe-Signature: t=1,v1=00\r\n"  # the webhook reads the body of a signed-looking request
    return f"{head}Content-Length: 1000\r\n\r\n".encode() + b"{"


async def test_held_sockets_neither_freeze_the_service_nor_stay_open(
    own_postgres: tuple[OwnPostgres, Path], database_for_server: str, enough_files: None
) -> None:
    _, folder = own_postgres
    env = {
        "MANA_SERVICE_KEY": SERVICE_KEY,
        "MANA_CREDITS_SCHEDULER": "false",
        "STRIPE_SECRET_KEY": "sk_test_mana_credits",
        "STRIPE_WEBHOOK_SECRET": "whsec_slow",
    }
    async with running(database_for_server, folder / "data", **env) as server:
        async with httpx.AsyncClient(base_url=server.base, timeout=ANSWER_SECONDS) as client:
            grant = {"userId": "slow-1", "amount": 100, "reason": "funding", "referenceId": "slow-1"}
            response = await client.post(
                "/api/v1/internal/credits/grant", json=grant, headers=service_headers()
            )
            assert response.status_code == 200, response.text
        payloads = [b""] * IDLE + [slow_body(SLOW_PATHS[i % len(SLOW_PATHS)]) for i in range(SLOW_BODIES)]
        attackers = [Attacker(server.port, payload) for payload in payloads]
        give_up = asyncio.Event()
        held = []
        for start in range(0, len(attackers), 250):  # in waves, as the listen queue takes them
            wave = attackers[start : start + 250]
            held += [asyncio.create_task(attacker.run(give_up)) for attacker in wave]
            await asyncio.gather(*(attacker.opened.wait() for attacker in wave))
        try:
            # A normal client, on a new connection, while every attacker socket is held.
            async with httpx.AsyncClient(base_url=server.base, timeout=ANSWER_SECONDS) as client:
                health = await client.get("/health")
                use = {"userId": "slow-1", "amount": 3, "appId": "faults", "description": "while attacked"}
                debit = await client.post("/api/v1/internal/credits/use", json=use,
                                          headers=service_headers("faults"))  # fmt: skip
            still_open = sum(a.closed_at is None for a in attackers)
            assert health.status_code == 200
            assert sum(a.failed for a in attackers) == 0, "the attack could not even open its sockets"
            assert debit.status_code == 200 and debit.json()["newBalance"]["balance"] == 97, debit.text
            assert still_open >= 0.9 * len(attackers), f"only {still_open} attacker sockets were held"
            # The server closes every attacker socket once its timeout has passed.
            # (an attacker's task ends when its socket is closed)
            _, pending = await asyncio.wait(held, timeout=CLOSED_WITHIN)
            assert not pending, f"{len(pending)} attacker sockets still open {CLOSED_WITHIN} s on"
        finally:
            give_up.set()
            await asyncio.gather(*held)
    idle_answers = {a.answer for a in attackers[:IDLE]}
    assert idle_answers == {b""}, idle_answers  # closed without a word: they never asked anything
    slow_answers = {(a.payload.split(b" ")[1], a.answer[:12]) for a in attackers[IDLE:]}
    assert all(a.answer.startswith(b"HTTP/1.1 408") for a in attackers[IDLE:]), slow_answers
    assert b'"code":"request_timeout"' in attackers[IDLE].answer
