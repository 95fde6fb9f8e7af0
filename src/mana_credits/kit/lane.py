"""A route's commonest request answered ahead of the framework: straight from ASGI to the work, through the
same edge (kit.edge) as every route. For the hottest paths only (credits.endpoints: the keyless internal
debit, a person's balance), where Litestar's routing, dependency injection and response building cost more
than the work.

The route's own `take` decides from the headers and the whole body (empty without a declared length): it
returns the work when it can answer exactly as the route would, else None, and the request goes on to the
app with its body intact, so Litestar answers it (every error included) as it answers any other. The work's
exceptions are worded by the app's own handlers (kit.errors), as on the route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar.enums import ScopeType
from litestar.types import Receive, ReceiveMessage, Scope, Send

from mana_credits.kit.edge import edge_middleware
from mana_credits.kit.errors import handler_for

# The work of a taken request: its answer's body (a Struct, status 200), or it raises.
Work = Callable[[], Awaitable[msgspec.Struct]]
Take = Callable[[Scope, bytes], Work | None]

# Larger bodies go the long way (the app answers 413 past its own limit).
MAX_BODY = 16 * 1024
_JSON = (b"content-type", b"application/json")


def answer_ahead(app: Litestar, method: str, path: str, take: Take) -> None:
    """Put a lane for `method path` in front of the app's request handling (after Litestar has set up
    the scope, so the app's exception handlers find the app in it)."""
    rest = app.asgi_handler

    async def lane(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["path"] != path or scope["method"] != method:
            await rest(scope, receive, send)
            return
        length = _declared_length(scope)
        if length is None:
            await rest(scope, receive, send)
            return
        body = await _read_body(receive) if length else b""
        if body is None:  # the client went away: nobody to answer
            return
        work = take(scope, body)
        if work is None:
            await rest(scope, _replaying(body, receive) if length else receive, send)
            return
        await edge_middleware(_answering(work))(scope, receive, send)

    app.asgi_handler = lane


def headers_once(
    scope: Scope, wanted: tuple[bytes, ...], refused: tuple[bytes, ...]
) -> dict[bytes, bytes] | None:
    """The `wanted` headers of the request; None when one of them is repeated (Litestar reads the first of
    repeated headers, a lane none) or one of `refused` is present."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in refused or name in found:
            return None
        if name in wanted:
            found[name] = value
    return found


def _declared_length(scope: Scope) -> int | None:
    """The body's declared length (0 without one); None when it is chunked or beyond MAX_BODY: those go
    the long way."""
    lengths = headers_once(scope, (b"content-length",), refused=(b"transfer-encoding",))
    if lengths is None:
        return None
    length = lengths.get(b"content-length", b"0")
    return int(length) if length.isdigit() and int(length) <= MAX_BODY else None


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body, or None when the client disconnected before sending it all."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body already read, then the connection's own messages."""
    replayed = False

    async def replay() -> ReceiveMessage:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _answering(work: Work) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            result = await work()
        except Exception as exc:
            request: Request[Any, Any, Any] = Request(scope, receive)
            response = handler_for(exc)(request, exc)
            await response.to_asgi_response(None, request)(scope, receive, send)
            return
        encoded = msgspec.json.encode(result)
        length = (b"content-length", str(len(encoded)).encode())
        await send({"type": "http.response.start", "status": 200, "headers": [_JSON, length]})
        await send({"type": "http.response.body", "body": encoded, "more_body": False})

    return answer
