"""One rule for user ids everywhere: 1 to 255 characters (path, body or token), else refused and nothing
is written."""

from __future__ import annotations

import asyncpg
import httpx

from tests.support import Api, service_headers

LONG = "u" * 5000


async def test_an_overlong_user_id_in_a_path_is_400_and_creates_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    for path in (
        f"/api/v1/internal/credits/balance/{LONG}",
        f"/api/v1/internal/sync/status/{LONG}",
    ):
        response = await client.get(path, headers=service_headers())
        assert response.status_code == 400, (path, response.text)
        assert response.json()["code"] == "validation_error"
    assert await db.fetchval("SELECT count(*) FROM credits.balances WHERE length(user_id) > 255") == 0
    at_limit = await client.get(f"/api/v1/internal/credits/balance/{'u' * 255}", headers=service_headers())
    assert at_limit.status_code == 200


async def test_an_overlong_user_id_in_a_body_is_400(client: httpx.AsyncClient) -> None:
    body = {"userId": "u" * 256, "amount": 1, "reason": "r", "referenceId": "x"}
    response = await client.post("/api/v1/internal/credits/grant", json=body, headers=service_headers())
    assert response.status_code == 400


async def test_a_token_with_an_overlong_subject_is_401(api: Api, client: httpx.AsyncClient) -> None:
    token = api.jwks.mint({"sub": "u" * 256})
    response = await client.get("/api/v1/credits/balance", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
