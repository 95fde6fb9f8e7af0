"""A deadline for the request body. granian bounds the wait for a request's headers, and a kept-alive
connection's idle time, but not for a body (its issue #728, declined): a client that declared 1,000 bytes
and sent 1 held its request, its connection and its slot (server.py) for as long as it liked. Here the
whole body must have arrived BODY_SECONDS after the request's headers, else the answer is 408 and the
connection is closed."""

from __future__ import annotations

import asyncio
import contextlib

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from mana_credits.kit.errors import envelope

# JSON bodies here are small (the app refuses more than a few hundred KB): a real client sends one within
# a second, a slow mobile link within a few.
BODY_SECONDS = 10.0

_TIMED_OUT = msgspec.json.encode(envelope(408, "The request body did not arrive in time", "request_timeout"))
_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_TIMED_OUT)).encode()),
    (b"connection", b"close"),
]


class _TooSlow(BaseException):
    """Raised from `receive` into the app. Not an Exception, so no handler of the app (`except Exception`)
    turns it into an answer: it unwinds the request's handling up to `body_deadline`, which answers."""


def body_deadline(app: ASGIApp, seconds: float = BODY_SECONDS) -> ASGIApp:
    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + seconds
        body_done = False

        async def receive_in_time() -> ReceiveMessage:
            nonlocal body_done
            if body_done:  # later receives wait for a disconnect, as long as the answer takes
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise _TooSlow from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        try:
            await app(scope, receive_in_time, send)
        except _TooSlow:
            # An app that answered before reading its body has its answer out already: granian refuses this
            # one and ends the connection anyway.
            with contextlib.suppress(Exception):
                await send({"type": "http.response.start", "status": 408, "headers": _HEADERS})
                await send({"type": "http.response.body", "body": _TIMED_OUT, "more_body": False})

    return guarded
