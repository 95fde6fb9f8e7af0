"""The lanes (kit.lane) answer exactly as their routes do. The keyless internal debit: the same request sent
to this service and to an instance without the group commit (where the route answers every debit) gets the
same status, headers, body and balance movement, whether the lane takes it or hands it on. A balance read:
the same with and without an Origin (which sends it the route's way)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from litestar import Litestar

from tests.conftest import LiveServer
from tests.support import APP_KEYS, SERVICE_KEY, Actor, Api, JwksServer

USE = "/api/v1/internal/credits/use"
KEYED = {"X-Service-Key": SERVICE_KEY, "X-App-Id": "chat"}
VARYING = {"id", "userId", "idempotencyKey", "createdAt", "completedAt"}  # differ between any two debits


def _shape(value: Any) -> Any:
    """A JSON body with the values that differ between two debits blanked out."""
    if isinstance(value, dict):
        return {k: "…" if k in VARYING else _shape(v) for k, v in value.items()}
    return value


async def _send_both(
    api: Api, base_url: str, no_group_commit: str, body: dict[str, Any] | bytes, headers: dict[str, str]
) -> list[tuple[int, dict[str, str], Any, int]]:
    """The same debit through this service and through the route: status, headers, body, credits taken."""
    answers = []
    for base in (base_url, no_group_commit):
        user = api.actor()
        await api.fund(user.id, 100)
        content = json.dumps(body).encode() if isinstance(body, dict) else body
        async with httpx.AsyncClient(base_url=base) as http:
            r = await http.post(USE, content=content.replace(b"USER", user.id.encode()), headers=headers)
        kept = {k: v for k, v in r.headers.items() if k not in ("date", "x-request-id", "content-length")}
        taken = 100 - (await api.balance(user))["balance"]
        answers.append((r.status_code, kept, _shape(r.json()), taken))
    return answers


JSON = {"Content-Type": "application/json"}
PLAIN = {"userId": "USER", "amount": 5, "appId": "chat", "description": "a chat"}


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (PLAIN, {**KEYED, **JSON}, 200),
        ({**PLAIN, "metadata": {"model": "x"}}, {**KEYED, **JSON}, 200),
        ({**PLAIN, "amount": 500}, {**KEYED, **JSON}, 402),  # more than the balance
        ({**PLAIN, "amount": 5.0}, {**KEYED, **JSON}, 200),  # an integral float is an integer
        ({**PLAIN, "amount": "5"}, {**KEYED, **JSON}, 400),
        ({**PLAIN, "amount": 0}, {**KEYED, **JSON}, 400),
        ({k: v for k, v in PLAIN.items() if k != "userId"}, {**KEYED, **JSON}, 400),
        (b'{"userId": "USER", "amount": 5,', {**KEYED, **JSON}, 400),  # malformed JSON
        (PLAIN, {"X-App-Id": "chat", **JSON}, 401),
        (PLAIN, {**KEYED, "X-Service-Key": "wrong", **JSON}, 401),
        (PLAIN, {**KEYED, "X-App-Id": "has space", **JSON}, 400),
        (PLAIN, {"X-Service-Key": APP_KEYS["picture"], **JSON}, 200),  # a per-app key books its app
        (PLAIN, {"X-Service-Key": SERVICE_KEY, **JSON}, 200),  # no X-App-Id
        (PLAIN, {**KEYED, "Content-Type": "application/json; charset=utf-8"}, 200),
        ({**PLAIN, "idempotencyKey": "key-of-USER"}, {**KEYED, **JSON}, 200),
    ],
)
async def test_the_same_answer_as_the_route(
    api: Api,
    base_url: str,
    no_group_commit: str,
    body: dict[str, Any] | bytes,
    headers: dict[str, str],
    status: int,
) -> None:
    lane, route = await _send_both(api, base_url, no_group_commit, body, headers)
    assert lane[0] == status
    assert lane == route


async def test_a_bad_value_fails_only_its_own_request(api: Api, base_url: str) -> None:
    user = api.actor()
    await api.fund(user.id, 100)
    good = {"userId": user.id, "amount": 1, "appId": "chat", "description": "ok"}
    bad = {**good, "description": "nul \u0000"}
    async with httpx.AsyncClient(base_url=base_url, limits=httpx.Limits(max_connections=100)) as http:
        answers = await asyncio.gather(*[http.post(USE, json=b, headers=KEYED) for b in [good] * 20 + [bad]])
    assert [r.status_code for r in answers] == [200] * 20 + [400]
    assert answers[-1].json()["code"] == "validation_error"
    assert (await api.balance(user))["balance"] == 80


def _scope(body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "http",
        "method": "POST", "path": USE, "raw_path": USE.encode(), "query_string": b"", "root_path": "",
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 3061), "state": {},
        "headers": headers or [
            (b"content-type", b"application/json"), (b"x-service-key", SERVICE_KEY.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
    }  # fmt: skip


async def _call(app: Litestar, scope: dict[str, Any], messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ASGI app called with `messages` as what the client sends; what it sent back."""
    inbox = iter(messages)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(inbox, {"type": "http.disconnect"})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)  # type: ignore[arg-type]
    return sent


async def _debit_of_4_on_10(api: Api) -> tuple[Actor, bytes]:
    """A funded account (10 credits) and the body of a debit of 4 from it."""
    user = api.actor()
    await api.fund(user.id, 10)
    return user, json.dumps({"userId": user.id, "amount": 4, "appId": "chat", "description": "x"}).encode()


async def test_a_body_in_several_parts_is_one_debit(api: Api, live: tuple[LiveServer, str]) -> None:
    user, body = await _debit_of_4_on_10(api)
    parts = [
        {"type": "http.request", "body": body[i : i + 7], "more_body": i + 7 < len(body)}
        for i in range(0, len(body), 7)
    ]
    sent = await _call(live[0].app, _scope(body), parts)
    assert sent[0]["status"] == 200
    assert json.loads(sent[1]["body"])["newBalance"] == {"balance": 6, "totalSpent": 4}
    assert (await api.balance(user))["balance"] == 6


async def test_a_client_gone_before_its_body_ends_is_charged_nothing(
    api: Api, live: tuple[LiveServer, str]
) -> None:
    user, body = await _debit_of_4_on_10(api)
    sent = await _call(
        live[0].app, _scope(body), [{"type": "http.request", "body": body[:20], "more_body": True}]
    )
    assert sent == []
    assert (await api.balance(user))["balance"] == 10


async def test_a_repeated_service_key_header_is_judged_by_the_route(
    api: Api, live: tuple[LiveServer, str]
) -> None:
    # The route reads the first of repeated headers; the lane takes no request with a repeated one.
    user, body = await _debit_of_4_on_10(api)
    headers = [
        (b"content-type", b"application/json"), (b"x-service-key", b"wrong"),
        (b"x-service-key", SERVICE_KEY.encode()), (b"content-length", str(len(body)).encode()),
    ]  # fmt: skip
    sent = await _call(live[0].app, _scope(body, headers), [{"type": "http.request", "body": body}])
    assert sent[0]["status"] == 401
    assert (await api.balance(user))["balance"] == 10


# ---- GET /credits/balance: apps and servers take the lane; a browser (Origin) takes the route ----

BALANCE = "/api/v1/credits/balance"
CORS = ("access-control-", "vary")


async def _balance_both(client: httpx.AsyncClient, headers: dict[str, str], query: str = "") -> list[Any]:
    """The same balance read without an Origin (the lane's) and with one (the route's): status, headers
    except CORS's, body."""
    answers = []
    for origin in ({}, {"Origin": "http://localhost:5173"}):
        r = await client.get(BALANCE + query, headers={**headers, **origin})
        kept = {
            k: v for k, v in r.headers.items() if not k.startswith(CORS) and k not in ("date", "x-request-id")
        }
        answers.append((r.status_code, kept, r.json()))
    return answers


def _minted(jwks: JwksServer, user_id: str, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {jwks.mint({'sub': user_id, **claims})}"}


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("valid", 200),
        ("query string", 200),
        ("no account yet", 200),
        ("expired", 401),
        ("wrong audience", 401),
        ("not a token", 401),
        ("basic scheme", 401),
        ("no authorization", 401),
        ("lower-case scheme", 200),
    ],
)
async def test_a_balance_read_is_the_same_as_the_routes(
    api: Api, client: httpx.AsyncClient, jwks: JwksServer, case: str, status: int
) -> None:
    user = api.actor()
    await api.fund(user.id, 42)
    query = "?fresh=1" if case == "query string" else ""
    headers = {
        "valid": user.headers,
        "query string": user.headers,
        "no account yet": _minted(jwks, f"u-{uuid.uuid4()}"),
        "expired": _minted(jwks, user.id, exp=int(time.time()) - 60),
        "wrong audience": _minted(jwks, user.id, aud="someone-else"),
        "not a token": {"Authorization": "Bearer not.a.token"},
        "basic scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
        "no authorization": {},
        "lower-case scheme": {"Authorization": f"bearer {user.token}"},
    }[case]
    lane, route = await _balance_both(client, headers, query)
    assert lane[0] == status
    assert lane == route
    if case == "valid":
        assert lane[2]["balance"] == 42
