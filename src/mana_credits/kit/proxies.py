"""Client addresses behind a reverse proxy (Traefik): X-Forwarded-For from trusted proxies only."""

from __future__ import annotations

import logging

from granian.utils.proxies import wrap_asgi_with_proxy_headers
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from mana_credits.kit.headers import has_header

log = logging.getLogger("mana_credits")

DEFAULT_TRUSTED = "127.0.0.1"


def behind_proxies(app: ASGIApp, trusted: str | None) -> ASGIApp:
    """Take the client address from X-Forwarded-For sent by `trusted` (comma list, CIDR or "*").

    With TRUSTED_PROXIES unset, a forwarded request from any other peer means a proxy we ignore: every
    client would share the proxy's address (one gift rate limit for all), so say so once per process.
    A request without X-Forwarded-For goes straight through (granian's wrapper parses the peer's address
    on every request, though it changes nothing then).
    """
    wrapped: ASGIApp = wrap_asgi_with_proxy_headers(app, trusted or DEFAULT_TRUSTED)
    warned = bool(trusted)

    async def forwarded_only(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal warned
        if scope["type"] != ScopeType.HTTP or not has_header(scope, b"x-forwarded-for"):
            await app(scope, receive, send)
            return
        if not warned:
            client = scope.get("client")
            peer = client[0] if client else None
            if peer != DEFAULT_TRUSTED:
                warned = True
                log.warning(
                    "X-Forwarded-For from %s ignored: TRUSTED_PROXIES is unset; set it to the proxy's "
                    "address or network so clients are told apart",
                    peer,
                )
        await wrapped(scope, receive, send)

    return forwarded_only
