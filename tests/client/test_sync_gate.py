"""The sync gate: a host app behind SyncGateMiddleware, served over real HTTP. Real answers come from the
real credits service; failure modes, call counting and the 100k-user bound use a stub of its status route."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from mana_credits.client import (
    SYNC_INACTIVE_BODY,
    CreditsClient,
    SyncBillingChecker,
    SyncGateConfigError,
    SyncGateMiddleware,
)
from mana_credits.client.sync_gate import Message, Scope
from tests.client.conftest import ASGI, BlackHole, InProcessStatus, StatusStub, host_app, user_from_header
from tests.support import SERVICE_KEY, Api

EXPECTED_402 = {
    "error": "sync_inactive",
    "message": "Cloud Sync ist nicht aktiv. Aktiviere Sync in den Einstellungen.",
}

Serve = Callable[[ASGI], Awaitable[httpx.AsyncClient]]


class FakeTime:
    """The checker's injected monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def checkers() -> AsyncIterator[Callable[..., SyncBillingChecker]]:
    made: list[SyncBillingChecker] = []

    def make(url: str, key: str = SERVICE_KEY, **options: Any) -> SyncBillingChecker:
        checker = SyncBillingChecker(url, key, **options)
        made.append(checker)
        return checker

    yield make
    for checker in made:
        await checker.aclose()


def gated(checker: SyncBillingChecker) -> ASGI:
    return SyncGateMiddleware(host_app, checker, user_from_header)


async def _get(http: httpx.AsyncClient, path: str, user: str | None, **headers: str) -> httpx.Response:
    return await http.get(path, headers={**({"X-User": user} if user else {}), **headers})


async def _subscriber(api: Api, client: httpx.AsyncClient) -> str:
    user = api.actor()
    await api.fund(user.id, 30)
    activated = await client.post("/api/v1/sync/activate", json={"interval": "monthly"}, headers=user.headers)
    assert activated.status_code == 200, activated.text
    return user.id


async def test_active_passes_inactive_gets_exact_402(
    base_url: str,
    api: Api,
    client: httpx.AsyncClient,
    checkers: Callable[..., SyncBillingChecker],
    serve: Serve,
) -> None:
    alice, bob = await _subscriber(api, client), api.actor().id
    http = await serve(gated(checkers(base_url)))

    assert (await _get(http, "/sync/changes", alice)).status_code == 200
    refused = await _get(http, "/sync/changes", bob)
    assert refused.status_code == 402
    assert refused.json() == EXPECTED_402
    assert SYNC_INACTIVE_BODY == EXPECTED_402
    # SSE is plain HTTP and gated the same way.
    sse = await _get(http, "/sync/events", bob, Accept="text/event-stream")
    assert (sse.status_code, sse.json()) == (402, EXPECTED_402)
    assert (await _get(http, "/sync", bob)).status_code == 402
    # Not gated: other paths, look-alike prefixes, and requests without a user (the host's auth decides).
    assert (await _get(http, "/health", bob)).status_code == 200
    assert (await _get(http, "/syncthing", bob)).status_code == 200
    assert (await _get(http, "/sync/changes", None)).status_code == 200

    async with CreditsClient(base_url, SERVICE_KEY, "mana-sync") as credits:
        status = await credits.sync_status(alice)
        assert (status.active, status.interval, status.gifted) == (True, "monthly", False)
        assert (await credits.sync_status(bob)).active is False


async def test_answers_are_cached_for_five_minutes(
    base_url: str,
    api: Api,
    client: httpx.AsyncClient,
    checkers: Callable[..., SyncBillingChecker],
    serve: Serve,
) -> None:
    carol = api.actor()
    clock = FakeTime()
    http = await serve(gated(checkers(base_url, clock=clock)))

    assert (await _get(http, "/sync/x", carol.id)).status_code == 402
    await api.fund(carol.id, 30)
    activated = await client.post("/api/v1/sync/activate", headers=carol.headers)
    assert activated.status_code == 200, activated.text
    # She is active now, but the gate may keep its answer for five minutes.
    clock.now += 299
    assert (await _get(http, "/sync/x", carol.id)).status_code == 402
    clock.now += 2
    assert (await _get(http, "/sync/x", carol.id)).status_code == 200


async def test_wrong_key_against_real_service_is_loud(
    base_url: str, api: Api, checkers: Callable[..., SyncBillingChecker]
) -> None:
    with pytest.raises(SyncGateConfigError) as raised:
        await checkers(base_url, key="wrong-key").is_active(api.actor().id)
    assert raised.value.status == 401


async def test_outage_fails_open_with_one_attempt_per_window(
    black_hole: tuple[BlackHole, str], checkers: Callable[..., SyncBillingChecker], serve: Serve
) -> None:
    hole, url = black_hole
    clock = FakeTime()
    checker = checkers(url, clock=clock, timeout=0.3, fail_open_ttl=30)
    http = await serve(gated(checker))

    for i in range(20):
        assert (await _get(http, "/sync/x", f"user-{i}")).status_code == 200
    # Only the first request waited for the hung service; the other 19 passed without trying.
    assert hole.connections == 1
    clock.now += 31
    assert (await _get(http, "/sync/x", "user-late")).status_code == 200
    assert hole.connections == 2
    assert len(checker) == 0  # fail-open answers are not cached as real ones


async def test_5xx_and_refused_connections_fail_open(
    status_stub: tuple[StatusStub, str], checkers: Callable[..., SyncBillingChecker]
) -> None:
    stub, url = status_stub
    stub.failing = True
    clock = FakeTime()
    checker = checkers(url, clock=clock)
    assert await checker.is_active("dave") is True
    assert await checker.is_active("erin") is True
    assert sum(stub.calls.values()) == 1
    clock.now += 31
    stub.failing = False
    assert await checker.is_active("dave") is False  # recovered: real answers again

    refused = checkers("http://127.0.0.1:9", clock=clock)  # nothing listens on the discard port
    assert await refused.is_active("frank") is True

    # A refusal about one user lets that user pass for a short while and leaves the others alone.
    stub.rejected = {"bad id"}
    assert await checker.is_active("bad id") is True
    assert await checker.is_active("erin") is False
    assert await checker.is_active("bad id") is True
    assert stub.calls["bad id"] == 1
    clock.now += 31
    assert await checker.is_active("bad id") is True
    assert stub.calls["bad id"] == 2


async def test_wrong_key_is_a_loud_configuration_error(
    status_stub: tuple[StatusStub, str],
    checkers: Callable[..., SyncBillingChecker],
    serve: Serve,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, url = status_stub
    strict = checkers(url, key="wrong-key")
    with pytest.raises(SyncGateConfigError) as raised:
        await strict.is_active("gina")
    assert raised.value.status == 401
    assert any(record.levelname == "ERROR" and "MISCONFIGURED" in record.message for record in caplog.records)
    # Through the middleware the host answers 500: never a silent pass, never a silent 402.
    http = await serve(gated(strict))
    assert (await _get(http, "/sync/x", "gina")).status_code == 500

    lenient = checkers(url, key="wrong-key", strict_auth=False)
    assert await lenient.is_active("gina") is True


async def test_cache_never_exceeds_its_bound(status_stub: tuple[StatusStub, str]) -> None:
    stub, _ = status_stub
    stub.active = {f"u{i}" for i in range(0, 100_000, 2)}
    checker = SyncBillingChecker(
        "http://credits.test", SERVICE_KEY, max_entries=1000, transport=InProcessStatus(stub)
    )
    try:
        largest = 0
        for i in range(100_000):
            assert await checker.is_active(f"u{i}") is (i % 2 == 0)
            largest = max(largest, len(checker))
        assert largest == 1000
        calls = sum(stub.calls.values())
        # The most recent 1000 are cached: asking again costs nothing; the oldest were evicted.
        for i in range(99_000, 100_000):
            assert await checker.is_active(f"u{i}") is (i % 2 == 0)
        assert sum(stub.calls.values()) == calls
        await checker.is_active("u0")
        assert sum(stub.calls.values()) == calls + 1
    finally:
        await checker.aclose()


async def test_concurrent_first_requests_share_one_status_call(
    status_stub: tuple[StatusStub, str], checkers: Callable[..., SyncBillingChecker], serve: Serve
) -> None:
    stub, url = status_stub
    stub.active = {"hana"}
    # The status answer is held until all 100 requests are inside the gate, so all 100 are misses.
    stub.gate = gate = asyncio.Event()
    arrived = 0

    def counting_user(scope: Scope) -> str | None:
        nonlocal arrived
        arrived += 1
        if arrived == 100:  # every request is inside the gate: let the held status answer go
            gate.set()
        return user_from_header(scope)

    http = await serve(SyncGateMiddleware(host_app, checkers(url), counting_user))
    requests = [asyncio.ensure_future(_get(http, "/sync/x", "hana")) for _ in range(100)]
    responses = await asyncio.gather(*requests)
    assert [r.status_code for r in responses] == [200] * 100
    assert stub.calls["hana"] == 1


async def _websocket(middleware: ASGI, user: str, extensions: dict[str, Any]) -> list[Message]:
    sent: list[Message] = []
    incoming = [{"type": "websocket.connect"}]

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/sync/ws",
        "headers": [(b"x-user", user.encode())],
        "extensions": extensions,
    }
    await middleware(scope, receive, send)
    return sent


async def test_websocket_is_refused_for_inactive_users(
    status_stub: tuple[StatusStub, str], checkers: Callable[..., SyncBillingChecker]
) -> None:
    stub, url = status_stub
    stub.active = {"ida"}
    accepted: list[str] = []

    async def ws_app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        accepted.append(scope["path"])
        await send({"type": "websocket.accept"})

    middleware = SyncGateMiddleware(ws_app, checkers(url), user_from_header)
    # Servers with the denial-response extension: the client gets the same 402 as over HTTP.
    with_extension = await _websocket(middleware, "jan", {"websocket.http.response": {}})
    assert [m["type"] for m in with_extension] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert with_extension[0]["status"] == 402
    assert json.loads(with_extension[1]["body"]) == EXPECTED_402
    # Without it: closed before accept (the server answers the handshake with 403), policy code 1008.
    without = await _websocket(middleware, "jan", {})
    assert without == [{"type": "websocket.close", "code": 1008, "reason": "sync_inactive"}]
    assert accepted == []
    assert await _websocket(middleware, "ida", {}) == [{"type": "websocket.accept"}]
    assert accepted == ["/sync/ws"]


@pytest.mark.parametrize("path", ["/wrong-prefix", "/api/v2"])
async def test_a_wrong_credits_url_is_a_loud_configuration_error(
    status_stub: tuple[StatusStub, str],
    checkers: Callable[..., SyncBillingChecker],
    serve: Serve,
    caplog: pytest.LogCaptureFixture,
    path: str,
) -> None:
    """Every call answered 404 (or anything but the status body) means the URL is wrong, not the user."""
    _, url = status_stub
    strict = checkers(url + path)
    with pytest.raises(SyncGateConfigError) as raised:
        await strict.is_active("hank")
    assert raised.value.status == 404
    assert any(record.levelname == "ERROR" and "MISCONFIGURED" in record.message for record in caplog.records)
    http = await serve(gated(strict))
    assert (await _get(http, "/sync/x", "hank")).status_code == 500
    lenient = checkers(url + path, strict_auth=False)
    assert await lenient.is_active("hank") is True


async def test_a_body_that_is_not_the_status_is_a_configuration_error(
    serve: Serve, checkers: Callable[..., SyncBillingChecker]
) -> None:
    """Something else answers at the URL (a web server's 200 page, a redirect): as loud as a 401."""

    async def not_credits(scope: Scope, receive: Any, send: Any) -> None:
        status = 302 if scope["path"].endswith("redirect") else 200
        body = b"<html>welcome</html>"
        await send({"type": "http.response.start", "status": status, "headers": [(b"location", b"/login")]})
        await send({"type": "http.response.body", "body": body})

    http = await serve(not_credits)
    url = str(http.base_url).rstrip("/")
    for user in ("ivan", "redirect"):
        with pytest.raises(SyncGateConfigError):
            await checkers(url).is_active(user)
