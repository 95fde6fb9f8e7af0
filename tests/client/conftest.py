"""Real network pieces for the client tests: a proxy that loses a response, a black hole, a status stub,
and a host app (behind the sync gate) served by uvicorn on loopback ports in the test event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from mana_credits.client import CreditsClient
from mana_credits.client.sync_gate import Receive, Scope, Send
from tests.conftest import Served
from tests.support import SERVICE_KEY

ASGI = Callable[[Scope, Receive, Send], Awaitable[None]]


class DroppingProxy:
    """TCP proxy to the service that forwards every request but loses the response to each request whose
    path contains an entry of `drop` (each entry once): the service did the work, the client sees the
    connection die — exactly a response lost in transit."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.drop: list[str] = []
        self.dropped: list[str] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _arm(self, data: bytes) -> bool:
        request_line = data.split(b"\r\n", 1)[0].decode(errors="replace")
        for entry in self.drop:
            if entry in request_line:
                self.drop.remove(entry)
                self.dropped.append(entry)
                return True
        return False

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        armed = False

        def close() -> None:
            writer.transport.abort()
            up_writer.transport.abort()

        async def upstream() -> None:
            nonlocal armed
            with contextlib.suppress(ConnectionError):
                while data := await reader.read(65536):
                    armed = armed or self._arm(data)
                    up_writer.write(data)
                    await up_writer.drain()
            close()

        async def downstream() -> None:
            with contextlib.suppress(ConnectionError):
                while data := await up_reader.read(65536):
                    if armed:
                        break
                    writer.write(data)
                    await writer.drain()
            close()

        await asyncio.gather(upstream(), downstream())


class BlackHole:
    """Accepts TCP connections and never answers: a hung credits service."""

    def __init__(self) -> None:
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)

    async def stop(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class StatusStub:
    """`GET /api/v1/internal/sync/status/{userId}` of the credits service, with configurable answers and a
    per-user call count; `gate` (when set) holds answers back until the test opens it."""

    PREFIX = "/api/v1/internal/sync/status/"

    def __init__(self) -> None:
        self.active: set[str] = set()
        self.failing = False
        self.rejected: set[str] = set()
        self.calls: Counter[str] = Counter()
        self.gate: asyncio.Event | None = None

    def answer(self, path: str, key: bytes | None) -> tuple[int, dict[str, Any]]:
        if not path.startswith(self.PREFIX):
            return 404, {"statusCode": 404, "code": "not_found"}
        if key != SERVICE_KEY.encode():
            return 401, {"statusCode": 401, "code": "unauthorized"}
        user_id = unquote(path.removeprefix(self.PREFIX))
        self.calls[user_id] += 1
        if self.failing:
            return 503, {"statusCode": 503, "code": "service_unavailable"}
        if user_id in self.rejected:
            return 400, {"statusCode": 400, "code": "validation_error"}
        return 200, {"active": user_id in self.active, "interval": "monthly"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        if self.gate is not None:
            await self.gate.wait()
        status, body = self.answer(scope["path"], dict(scope["headers"]).get(b"x-service-key"))
        await _json(send, status, body)


class InProcessStatus(httpx.AsyncBaseTransport):
    """The same status stub without sockets or ASGI, for the 100k-user case (network would take minutes)."""

    def __init__(self, stub: StatusStub) -> None:
        self.stub = stub

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = request.headers.get("x-service-key")
        status, body = self.stub.answer(request.url.raw_path.decode(), key.encode() if key else None)
        return httpx.Response(status, json=body)


async def _json(send: Send, status: int, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": raw})


async def host_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The sync server behind the gate: answers 200 with the path on every HTTP request."""
    await _json(send, 200, {"ok": True, "path": scope["path"]})


def user_from_header(scope: Scope) -> str | None:
    """Stands in for the host's JWT check: the user id arrives in `X-User`."""
    for name, value in scope["headers"]:
        if name == b"x-user":
            return str(value.decode())
    return None


@pytest.fixture
async def credits_client(base_url: str) -> AsyncIterator[CreditsClient]:
    async with CreditsClient(base_url, SERVICE_KEY, "chat", retries=2, backoff=0.01) as client:
        yield client


@pytest.fixture
async def dropping_proxy(base_url: str) -> AsyncIterator[tuple[DroppingProxy, str]]:
    proxy = DroppingProxy(base_url)
    url = await proxy.start()
    yield proxy, url
    await proxy.stop()


@pytest.fixture
async def black_hole() -> AsyncIterator[tuple[BlackHole, str]]:
    hole = BlackHole()
    url = await hole.start()
    yield hole, url
    await hole.stop()


@pytest.fixture
async def status_stub() -> AsyncIterator[tuple[StatusStub, str]]:
    stub = StatusStub()
    served = Served(stub, lifespan=False)
    url = await served.start()
    yield stub, url
    await served.stop()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[ASGI], Awaitable[httpx.AsyncClient]]]:
    """Factory: serve an ASGI app and get an HTTP client for it; everything is stopped afterwards."""
    started: list[tuple[Served, httpx.AsyncClient]] = []

    async def start(app: ASGI) -> httpx.AsyncClient:
        served = Served(app, lifespan=False)
        url = await served.start()
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        http = httpx.AsyncClient(base_url=url, timeout=30, limits=limits)
        started.append((served, http))
        return http

    yield start
    for served, http in started:
        await http.aclose()
        await served.stop()
