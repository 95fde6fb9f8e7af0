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
# A request's headers by name, each sent once.
Headers = dict[bytes, bytes]
Take = Callable[[Scope, Headers, bytes], Work | None]

# Larger bodies go the long way (the app answers 413 past its own limit).
MAX_BODY = 16 * 1024
_JSON = (b"content-type", b"application/json")


def answer_ahead(app: Litestar, lanes: dict[tuple[str, str], Take]) -> None:
    """Put one lane per (method, path) in front of the app's request handling, all in one layer (after
    Litestar has set up the scope, so the app's exception handlers find the app in it).

    A lane never takes a request with an `Origin` (a browser: the CORS middleware behind must add its
    headers), a header sent twice (the app reads the first of repeated headers), a chunked body or one
    beyond MAX_BODY."""
    rest = app.asgi_handler

    async def lane(scope: Scope, receive: Receive, send: Send) -> None:
        take = lanes.get((scope["method"], scope["path"])) if scope["type"] == ScopeType.HTTP else None
        headers = None if take is None else _headers(scope)
        length = None if headers is None else _declared_length(headers)
        if take is None or headers is None or length is None:
            await rest(scope, receive, send)
            return
        body = await _read_body(receive) if length else b""
        if body is None:  # the client went away: nobody to answer
            return
        work = take(scope, headers, body)
        if work is None:
            await rest(scope, _replaying(body, receive) if length else receive, send)
            return
        await edge_middleware(_answering(work))(scope, receive, send)

    app.asgi_handler = lane


def _headers(scope: Scope) -> Headers | None:
    """The request's headers; None when one is sent twice or it comes from a browser (`Origin`)."""
    found: Headers = {}
    for name, value in scope["headers"]:
        if name in found or name == b"origin":
            return None
        found[name] = value
    return found


def _declared_length(headers: Headers) -> int | None:
    """The body's declared length (0 without one); None when it is chunked or beyond MAX_BODY."""
    length = headers.get(b"content-length", b"0")
    if b"transfer-encoding" in headers or not length.isdigit() or int(length) > MAX_BODY:
        return None
    return int(length)


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
