"""The client address a request is counted under (gift redeem limits) behind Traefik: X-Forwarded-For
counts only from a trusted proxy, and a request without it keeps its peer's address."""

from __future__ import annotations

from typing import Any

import pytest

from mana_credits.kit.proxies import behind_proxies


async def _client_seen(trusted: str | None, peer: str, forwarded: str | None) -> str:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["client"][0])

    headers = [(b"host", b"credits.mana.how")]
    if forwarded is not None:
        headers.append((b"x-forwarded-for", forwarded.encode()))
    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers, "client": (peer, 40000)}
    await behind_proxies(app, trusted)(scope, None, None)  # type: ignore[arg-type]
    return seen[0]


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "client"),
    [
        ("10.0.0.0/8", "10.0.0.2", "203.0.113.9", "203.0.113.9"),  # Traefik names the client
        ("10.0.0.0/8", "10.0.0.2", "198.51.100.1, 10.0.0.3", "198.51.100.1"),  # through two proxies
        ("10.0.0.0/8", "10.0.0.2", None, "10.0.0.2"),  # not forwarded: the peer itself
        ("10.0.0.0/8", "192.0.2.7", "203.0.113.9", "192.0.2.7"),  # an untrusted peer cannot claim one
        (None, "127.0.0.1", "203.0.113.9", "203.0.113.9"),  # unset: a proxy on the same host
        (None, "172.18.0.5", "203.0.113.9", "172.18.0.5"),  # unset: another host is not trusted
    ],
)
async def test_client_address_behind_proxies(
    trusted: str | None, peer: str, forwarded: str | None, client: str
) -> None:
    assert await _client_seen(trusted, peer, forwarded) == client
