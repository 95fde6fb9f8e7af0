from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from tests.support import Actor, Api, service_headers


async def activate(api: Api, actor: Actor, interval: str | None = None) -> httpx.Response:
    body = {"interval": interval} if interval else None
    return await api.client.post("/api/v1/sync/activate", json=body, headers=actor.headers)


async def status(api: Api, actor: Actor) -> dict[str, Any]:
    response = await api.client.get("/api/v1/sync/status", headers=actor.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def run_renewals(api: Api) -> dict[str, int]:
    response = await api.client.post("/api/v1/internal/sync/charge-recurring", headers=service_headers())
    assert response.status_code == 200, response.text
    return dict(response.json())


def near(value: str | None, expected: str) -> bool:
    """The test clock keeps running after it is set: a timestamp within a minute of `expected` matches."""
    assert value is not None
    found = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return abs(found - datetime.fromisoformat(expected)) < timedelta(minutes=1)
