"""Request bodies are capped before they are parsed (413), and responses carry the security headers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx

from tests.support import Api

KIB = 1024


async def test_a_body_over_64_kib_is_413_before_parsing(api: Api, db: asyncpg.Connection) -> None:
    user = api.actor()
    await api.fund(user.id, 100)
    big = {"amount": 1, "appId": "chat", "description": "x", "metadata": {"blob": "a" * (200 * KIB)}}
    response = await api.client.post("/api/v1/credits/use", json=big, headers=user.headers)
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "payload_too_large"

    # Without a Content-Length (chunked), the stream is cut at the limit just the same.
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(200):
            yield b"a" * KIB

    chunked = await api.client.post(
        "/api/v1/credits/use", content=chunks(), headers={**user.headers, "Content-Type": "application/json"}
    )
    assert chunked.status_code == 413
    assert (await api.balance(user))["balance"] == 100
    # Just under the cap is read and judged on its merits.
    fits = {"amount": 1, "appId": "chat", "description": "x", "metadata": {"blob": "a" * (60 * KIB)}}
    assert (await api.client.post("/api/v1/credits/use", json=fits, headers=user.headers)).status_code == 200


async def test_json_responses_carry_security_headers(api: Api, client: httpx.AsyncClient) -> None:
    user = api.actor()
    personal = await client.get("/api/v1/credits/balance", headers=user.headers)
    health = await client.get("/health")
    error = await client.get("/api/v1/credits/balance")
    for response in (personal, health, error):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "server" not in response.headers or not any(c.isdigit() for c in response.headers["server"])
    assert personal.headers["cache-control"] == "no-store"
    assert error.headers["cache-control"] == "no-store"
