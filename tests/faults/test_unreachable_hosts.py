"""Issue 24 §3.3: a database host that drops packets, and an outage with many callers.

A host that drops packets (a powered-off node, a partition) is not a host that refuses: every connect to it
waits its whole timeout. Listed first in a multi-host URL, it used asyncpg's one timeout for all hosts, so
no connection ever reached the primary behind it. And while no host answers, each request dialled on its
own: the attempts a second grew with the callers instead of backing off."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from mana_credits.app import create_app
from mana_credits.db.migrate import upgrade_async
from tests.conftest import LiveServer, make_settings
from tests.faults.conftest import FreezingProxy
from tests.support import JwksServer, service_headers

pytestmark = pytest.mark.slow

CALLERS = 20


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A loopback port that drops every SYN: a listening socket whose accept queue (length 1) is full and
    never drained, so the kernel drops further connection attempts instead of refusing them."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        with socket.create_connection(("127.0.0.1", port)):  # fills the queue
            probe = socket.socket()
            probe.settimeout(0.5)
            with probe, pytest.raises(TimeoutError):
                probe.connect(("127.0.0.1", port))
            yield port


def _grant(user: str) -> dict[str, object]:
    return {"userId": user, "amount": 5, "reason": "t", "referenceId": str(uuid.uuid4())}


async def test_a_first_host_that_drops_packets_does_not_stop_the_service(
    proxy: FreezingProxy, blackhole: int, jwks: JwksServer
) -> None:
    await upgrade_async(proxy.url("faults"))
    url = (
        f"postgresql://postgres@127.0.0.1:{blackhole},127.0.0.1:{proxy.port}/faults"
        "?target_session_attrs=read-write"
    )
    server = LiveServer(create_app(make_settings(url, jwks, DB_POOL_SIZE=4)))
    base = await server.start()  # the pool's first connection: before the fix a TimeoutError after 5 s
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            users = [f"blackhole-{uuid.uuid4()}" for _ in range(CALLERS)]
            started = time.monotonic()
            grants = await asyncio.gather(
                *(client.post("/api/v1/internal/credits/grant", json=_grant(u), headers=service_headers())
                  for u in users)
            )  # fmt: skip
            assert [r.status_code for r in grants] == [200] * CALLERS, grants[0].text
            # The pool grew to 4 connections: the silent host was tried once, then went last.
            assert time.monotonic() - started < 15
            balances = [
                await client.get(f"/api/v1/internal/credits/balance/{u}", headers=service_headers())
                for u in users
            ]
            assert {r.json()["balance"] for r in balances} == {5}
    finally:
        await server.stop()


async def test_an_outage_is_retried_with_backoff_not_by_every_caller(
    proxy: FreezingProxy, jwks: JwksServer
) -> None:
    url = proxy.url("faults")
    await upgrade_async(url)
    server = LiveServer(create_app(make_settings(url, jwks, DB_POOL_SIZE=4)))
    base = await server.start()
    answers: Counter[int] = Counter()
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            users = [f"outage-{uuid.uuid4()}" for _ in range(CALLERS)]

            async def caller(user: str, until: float) -> None:
                while time.monotonic() < until:
                    response = await client.post(
                        "/api/v1/internal/credits/grant", json=_grant(user), headers=service_headers()
                    )
                    answers[response.status_code] += 1
                    if response.status_code == 503:
                        assert response.json()["code"] == "service_unavailable"
                        assert response.headers["retry-after"]

            proxy.refuse()
            before = proxy.connections
            await asyncio.gather(*(caller(u, time.monotonic() + 3) for u in users))
            attempts = proxy.connections - before
            # Before the fix: every request dialled (hundreds in 3 s); backing off to 1 s: about a dozen.
            assert attempts <= 20, (attempts, answers)
            assert set(answers) == {503} and answers[503] >= CALLERS, answers

            proxy.thaw()
            recovered = time.monotonic()
            while (await client.post("/api/v1/internal/credits/grant", json=_grant(users[0]),
                                     headers=service_headers())).status_code != 200:  # fmt: skip
                assert time.monotonic() - recovered < 10, "no recovery within 10 s"
                await asyncio.sleep(0.05)
            grants = await asyncio.gather(
                *(client.post("/api/v1/internal/credits/grant", json=_grant(u), headers=service_headers())
                  for u in users)
            )  # fmt: skip
            assert [r.status_code for r in grants] == [200] * CALLERS
    finally:
        await server.stop()
