"""Hostile or absurd input anywhere gets a 4xx in the envelope, never a 500, and writes nothing."""

from __future__ import annotations

import base64
import json
import uuid

import httpx
import pytest

from tests.support import Api, service_headers


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


async def test_deeply_nested_json_is_400(api: Api, client: httpx.AsyncClient) -> None:
    # Under the 64 KiB body cap, still far deeper than any decoder allows.
    user = api.actor()
    raw = '{"amount":1,"appId":"a","description":"d","metadata":{"x":' + _nested(30_000) + "}}"
    response = await client.post(
        "/api/v1/credits/use", content=raw, headers={**user.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["code"] == "validation_error"


@pytest.mark.parametrize(
    "body",
    [
        {"amount": 1, "appId": "chat", "description": "nul \u0000 inside"},
        {"amount": 1, "appId": "chat", "description": "x", "metadata": {"a": "\u0000"}},
        {"amount": 1, "appId": "chat", "description": "x", "metadata": {"\u0000": 1}},
    ],
)
async def test_nul_characters_are_400_and_nothing_moves(
    api: Api, client: httpx.AsyncClient, body: dict[str, object]
) -> None:
    user = api.actor()
    await api.fund(user.id, 10)
    response = await client.post("/api/v1/credits/use", json=body, headers=user.headers)
    assert response.status_code == 400 and response.json()["code"] == "validation_error"
    assert (await api.balance(user))["balance"] == 10


@pytest.mark.parametrize(
    "path",
    ["/api/v1/internal/credits/balance/a%00b", "/api/v1/internal/sync/status/a%00b"],
)
async def test_nul_in_path_is_400(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path, headers=service_headers())
    assert response.status_code == 400


async def test_balance_beyond_the_column_range_is_400_not_500(api: Api, client: httpx.AsyncClient) -> None:
    user = api.actor()
    grant = {"userId": user.id, "amount": 1_000_000_000, "reason": "big"}
    for i in range(2):
        ok = await client.post(
            "/api/v1/internal/credits/grant",
            json={**grant, "referenceId": f"big-{i}"},
            headers=service_headers(),
        )
        assert ok.status_code == 200
    too_much = await client.post(
        "/api/v1/internal/credits/grant", json={**grant, "referenceId": "big-2"}, headers=service_headers()
    )
    assert too_much.status_code == 400 and too_much.json()["code"] == "validation_error"
    assert (await api.balance(user))["balance"] == 2_000_000_000
    # The refused grant left no trace: its reference can be used once the account has room.
    again = await client.post(
        "/api/v1/internal/credits/grant",
        json={**grant, "amount": 1, "referenceId": "big-2"},
        headers=service_headers(),
    )
    assert again.status_code == 200 and again.json()["alreadyGranted"] is False


@pytest.mark.parametrize("app_id", ["x" * 101, "has space", "new\\nline", ""])
async def test_bad_app_id_header_is_400(api: Api, client: httpx.AsyncClient, app_id: str) -> None:
    user = api.actor()
    await api.fund(user.id, 5)
    response = await client.post(
        "/api/v1/internal/credits/use",
        json={"userId": user.id, "amount": 1, "appId": "a", "description": "d", "idempotencyKey": "k"},
        headers={"X-Service-Key": "test-service-key", "X-App-Id": app_id},
    )
    if app_id == "":
        assert response.status_code == 200  # no header value: the caller is "unknown", as before
    else:
        assert response.status_code == 400 and response.json()["code"] == "validation_error"
        assert (await api.balance(user))["balance"] == 5


def _cursor(stamp: str) -> str:
    return base64.urlsafe_b64encode(f"{stamp}|{uuid.uuid4()}".encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "stamp", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-01-01T00:00:00", "yesterday"]
)
async def test_out_of_range_cursor_is_400(api: Api, client: httpx.AsyncClient, stamp: str) -> None:
    user = api.actor()
    response = await client.get(
        "/api/v1/credits/transactions", params={"cursor": _cursor(stamp)}, headers=user.headers
    )
    assert response.status_code == 400 and response.json()["code"] == "validation_error"


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "header",
    [{"alg": ["EdDSA"], "typ": "JWT"}, {"alg": "EdDSA", "kid": ["a"]}, {"alg": None}, {"alg": {"x": 1}}],
)
async def test_malformed_jwt_headers_are_401(client: httpx.AsyncClient, header: dict[str, object]) -> None:
    token = f"{_b64(header)}.{_b64({'sub': 'x'})}.c2ln"
    response = await client.get("/api/v1/credits/balance", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


@pytest.mark.parametrize("route", ["user", "service"])
async def test_a_present_but_empty_idempotency_key_header_is_400(
    api: Api, client: httpx.AsyncClient, route: str
) -> None:
    """An empty header used to switch idempotency off: the retry was charged again. (A blank one arrives
    empty: HTTP strips a value's surrounding spaces; kit tests cover blank values.)"""
    user = api.actor()
    await api.fund(user.id, 10)
    if route == "user":
        path, body, headers = "/api/v1/credits/use", {"amount": 1, "appId": "chat"}, user.headers
    else:  # a service's debit, the route the group commit's lane takes when no key is sent
        path, body = "/api/v1/internal/credits/use", {"userId": user.id, "amount": 1, "appId": "chat"}
        headers = service_headers("chat")
    for _ in range(2):
        response = await client.post(
            path, json={**body, "description": "twice"}, headers={**headers, "Idempotency-Key": ""}
        )
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "validation_error"
        assert "Idempotency" in response.json()["message"]
    assert (await api.balance(user))["balance"] == 10


BAD_UTF8 = b'{"amount":1,"appId":"chat","description":"\xff\xfe"}'


@pytest.mark.parametrize(
    ("path", "auth"),
    [
        ("/api/v1/credits/use", "user"),
        ("/api/v1/credits/use", "none"),
        ("/api/v1/internal/credits/use", "service"),
        ("/api/v1/internal/credits/use", "wrong-key"),
        ("/api/v1/gifts", "user"),
        ("/api/v1/sync/activate", "user"),
    ],
)
async def test_invalid_utf8_is_the_same_400_everywhere(
    api: Api, client: httpx.AsyncClient, path: str, auth: str
) -> None:
    user = api.actor()
    await api.fund(user.id, 10)
    headers = {
        "user": user.headers, "none": {}, "service": service_headers("chat"),
        "wrong-key": service_headers("chat", key="wrong"),
    }[auth]  # fmt: skip
    body = BAD_UTF8.replace(b'"amount"', f'"userId":"{user.id}","amount"'.encode())
    response = await client.post(path, content=body, headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "validation_error"
    assert response.json()["statusCode"] == 400
    assert (await api.balance(user))["balance"] == 10


@pytest.mark.parametrize("key", ["right", "wrong"])
async def test_deep_metadata_on_the_service_debit_is_400_before_or_after_authentication(
    api: Api, client: httpx.AsyncClient, key: str
) -> None:
    user = api.actor()
    await api.fund(user.id, 10)
    raw = '{"userId":"' + user.id + '","amount":1,"appId":"chat","metadata":{"x":' + _nested(1000) + "}}"
    headers = service_headers(
        "chat", key=service_headers("chat")["X-Service-Key"] if key == "right" else "no"
    )
    response = await client.post(
        "/api/v1/internal/credits/use", content=raw, headers={**headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "validation_error"
    assert (await api.balance(user))["balance"] == 10


@pytest.mark.parametrize("second", ['"amount"', '"\\u0061mount"'], ids=["plain", "escaped"])
@pytest.mark.parametrize(
    ("path", "auth"), [("/api/v1/credits/use", "user"), ("/api/v1/internal/credits/use", "service")]
)
async def test_duplicate_json_keys_are_refused(
    api: Api, client: httpx.AsyncClient, path: str, auth: str, second: str
) -> None:
    """`"amount":1,"amount":2` charged 2, while a proxy reading the first value would log 1: refuse it."""
    user = api.actor()
    await api.fund(user.id, 10)
    headers = user.headers if auth == "user" else service_headers("chat")
    raw = '{"userId":"' + user.id + '","amount":1,"appId":"chat","description":"d",' + second + ":2}"
    response = await client.post(path, content=raw, headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "validation_error"
    assert "amount" in response.json()["message"]
    assert (await api.balance(user))["balance"] == 10
