"""Headers every response carries: no MIME sniffing, no caching of (personal) data, no server banner;
and an `Allow` on OPTIONS that lists every method of the path."""

from __future__ import annotations

import re
from typing import Any

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
                dropped = _DROPPED | ({b"allow"} if _has(headers, b"allow") else set())
                kept = [h for h in headers if h[0].lower() not in dropped]
                allow = [(b"allow", _allowed(scope))] if b"allow" in dropped else []
                message["headers"] = [*kept, *_ADDED, *allow, *(cache or [_DEFAULT_CACHE])]
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware


def _has(headers: list[Any], name: bytes) -> bool:
    return any(h[0].lower() == name for h in headers)


_PARAM = re.compile(r"\{[^}]+\}")
_methods_by_shape: dict[int, dict[str, set[str]]] = {}


def _allowed(scope: Scope) -> bytes:
    """Litestar's own OPTIONS answer lists the methods of the first handlers registered for a path (and
    of one of two paths that differ only in a parameter's name); list all of them."""
    app = scope["app"]
    shapes = _methods_by_shape.get(id(app))
    if shapes is None:
        shapes = {}
        for route in app.routes:
            shapes.setdefault(_PARAM.sub("{}", route.path), set()).update(getattr(route, "methods", ()))
        _methods_by_shape[id(app)] = shapes
    handler_paths: set[str] = getattr(scope.get("route_handler"), "paths", set())
    methods = set().union(*(shapes.get(_PARAM.sub("{}", p), set()) for p in handler_paths)) or {"OPTIONS"}
    return ", ".join(sorted(methods)).encode()
