"""Idempotency keys: parsing at the edge, and claim/replay against the real table."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar import Request, Response

from mana_credits.context import AppContext
from mana_credits.db.pool import Conn
from mana_credits.kit import idempotency
from mana_credits.kit.errors import IdempotencyKeyReused, ValidationFailed


def request_with(*headers: tuple[bytes, bytes]) -> Request[Any, Any, Any]:
    scope = {"type": "http", "method": "POST", "path": "/x", "headers": list(headers), "query_string": b""}
    return Request(scope=scope)  # type: ignore[arg-type]


def test_header_wins_over_body_key_and_is_trimmed() -> None:
    assert idempotency.key_from(request_with((b"idempotency-key", b"  abc  ")), "body") == "abc"
    assert idempotency.key_from(request_with(), " from-body ") == "from-body"
    assert idempotency.key_from(request_with()) is None


@pytest.mark.parametrize("key", [b"", b"   ", b"k" * 256])
def test_blank_or_long_key_is_refused(key: bytes) -> None:
    with pytest.raises(ValidationFailed):
        idempotency.key_from(request_with((b"idempotency-key", key)))


def test_longest_key_is_accepted() -> None:
    assert idempotency.key_from(request_with((b"idempotency-key", b"k" * 255))) == "k" * 255


def test_fingerprint_tells_parameters_apart() -> None:
    assert idempotency.fingerprint("use", {"a": 1}) == idempotency.fingerprint("use", {"a": 1})
    assert idempotency.fingerprint("use", {"a": 1}) != idempotency.fingerprint("use", {"a": 2})
    assert idempotency.fingerprint("use", {"a": 1}) != idempotency.fingerprint("refund", {"a": 1})


class Counted(msgspec.Struct):
    n: int


class Done(msgspec.Struct):
    ok: bool


def body(response: Response[Any]) -> Any:
    """The JSON a response sends: a first answer holds a Struct, a replay the stored JSON."""
    return msgspec.json.decode(msgspec.json.encode(response.content))


async def test_a_key_runs_once_and_replays_its_answer(ctx: AppContext) -> None:
    scope, key = f"test:{uuid.uuid4()}", b"k1"
    idem = idempotency.Idempotent(ctx.pool, scope, request_with((b"idempotency-key", key)))
    runs: list[int] = []

    async def work(conn: Conn) -> Counted:
        runs.append(await conn.fetchval("SELECT 1"))
        return Counted(n=len(runs))

    def call(params: Any) -> Any:
        return idem.run("op", params, work, status=201)

    first = await call({"x": 1})
    again = await call({"x": 1})
    assert (first.status_code, body(first), idempotency.REPLAY_HEADER in first.headers) == (
        201,
        {"n": 1},
        False,
    )
    assert (again.status_code, body(again), again.headers[idempotency.REPLAY_HEADER]) == (
        201,
        {"n": 1},
        "true",
    )
    assert runs == [1]
    with pytest.raises(IdempotencyKeyReused):
        await call({"x": 2})


async def test_a_failed_run_leaves_the_key_free(ctx: AppContext, db: asyncpg.Connection) -> None:
    scope = f"test:{uuid.uuid4()}"
    idem = idempotency.Idempotent(ctx.pool, scope, request_with((b"idempotency-key", b"k")))

    async def fail(conn: Conn) -> Done:
        raise ValidationFailed("no")

    async def succeed(conn: Conn) -> Done:
        return Done(ok=True)

    with pytest.raises(ValidationFailed):
        await idem.run("op", {}, fail)
    stored = await db.fetchval("SELECT count(*) FROM credits.idempotency_keys WHERE scope = $1", scope)
    assert stored == 0
    done = await idem.run("op", {}, succeed)
    assert done.status_code == 200 and body(done) == {"ok": True}
