"""Headers every response carries: no MIME sniffing, no caching of (personal) data, no server banner."""

from __future__ import annotations

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

_ADDED = [(b"x-content-type-options", b"nosniff")]
# Balances, histories and gifts are personal; nothing here is worth a shared cache's risk.
_DEFAULT_CACHE = (b"cache-control", b"no-store")
_DROPPED = {b"server", b"cache-control"}


def security_headers_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                cache = [h for h in headers if h[0].lower() == b"cache-control"]
                kept = [h for h in headers if h[0].lower() not in _DROPPED]
                message["headers"] = [*kept, *_ADDED, *(cache or [_DEFAULT_CACHE])]
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware
