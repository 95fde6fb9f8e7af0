"""Idempotent writes: a retried request has its effect once and gets the first answer again.

A handler declares one by naming `idem: Idempotent` (provided per caller by auth.dependencies) and runs its
work through `await idem.run(operation, params, work)`. The key row is inserted in the same database
transaction as the effect. A concurrent duplicate blocks on the primary key until the first commits, then
finds the stored response and replays it; if the first rolled back (an error), the duplicate runs as if it
were first. Only successful responses are stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import asyncpg
import msgspec
from litestar import MediaType, Request, Response

from mana_credits.db.pool import Conn
from mana_credits.kit import repository
from mana_credits.kit.errors import IdempotencyKeyReused, ValidationFailed

REPLAY_HEADER = "Idempotent-Replayed"
# How long a request key can be replayed. Grant references (scope `grant:`) are kept forever: a grant is
# exactly once per (user, referenceId) however late the repeat comes.
RETENTION = timedelta(days=30)
MAX_KEY_LENGTH = 255

S = TypeVar("S", bound=msgspec.Struct)


def key_from(request: Request[Any, Any, Any], body_key: str | None = None) -> str | None:
    """The `Idempotency-Key` header, else the old `idempotencyKey` body field. A header that is present
    but blank is refused, not ignored: ignoring it would charge the caller's retry a second time."""
    header = request.headers.get("idempotency-key")
    key = header if header is not None else body_key
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationFailed(
            f"Idempotency key must be 1..{MAX_KEY_LENGTH} characters",
            details={"fields": [{"field": "idempotencyKey"}]},
        )
    return key


def fingerprint(operation: str, params: Any) -> str:
    return hashlib.sha256(operation.encode() + b"\0" + msgspec.json.encode(params)).hexdigest()


def replay(status: int, body: Any) -> Response[Any]:
    """A stored answer as it was stored: its JSON passes through (the old service's keys have its shape)."""
    raw = msgspec.Raw(msgspec.json.encode(body))
    return Response(raw, status_code=status, media_type=MediaType.JSON, headers={REPLAY_HEADER: "true"})


class Idempotent:
    """One write request's idempotency: the caller's scope (`user:<id>`, `service:<app>`) and its key.

    The header key is checked when the dependency is resolved; `with_body_key` adds the old clients'
    `idempotencyKey` body field, used when the header has none. `user_id`: whom the stored answer is
    about, so that account deletion finds it under the caller's scope; `run` takes it, or `work` sets
    it when only the work learns it (a hold's owner)."""

    def __init__(
        self, pool: asyncpg.Pool, scope: str, request: Request[Any, Any, Any], body_key: str | None = None
    ) -> None:
        self.pool = pool
        self.scope = scope
        self.request = request
        self.key = key_from(request, body_key)
        self.user_id: str | None = None

    def with_body_key(self, body_key: str | None) -> Idempotent:
        if body_key is None or self.key is not None:  # no body key, or the header's, which wins
            return self
        return Idempotent(self.pool, self.scope, self.request, body_key)

    async def run(
        self,
        operation: str,
        params: Any,
        work: Callable[[Conn], Awaitable[S]],
        *,
        status: int = 200,
        legacy_user: str | None = None,
        one_statement: bool = False,
        user_id: str | None = None,
    ) -> Response[S]:
        """Run `work` in one transaction; with a key, at most once per (scope, key).

        `params` (without the key) tell a repeat from a reuse of the key for another request.
        `legacy_user`: also replay a key the old service executed for this user (carried over by
        migration 0007). `one_statement`: `work` writes with a single statement (atomic by itself), so
        without a key it needs no explicit transaction: that saves the BEGIN and COMMIT round trips.
        """
        key = self.key
        self.user_id = user_id or self.user_id
        if key is None and one_statement:
            async with self.pool.acquire() as conn:
                return answer(status, await work(conn))
        async with self.pool.acquire() as conn, conn.transaction():
            if key is None:
                return answer(status, await work(conn))
            stored = await legacy_response(conn, legacy_user, key) if legacy_user is not None else None
            if stored is None:
                stored = await claim(conn, self.scope, key, fingerprint(operation, params))
            if stored is not None:
                return replay(*stored)
            body = await work(conn)
            await remember(conn, self.scope, key, status, body, self.user_id)
            return answer(status, body)


def answer(status: int, body: S) -> Response[S]:
    return Response(body, status_code=status, media_type=MediaType.JSON)


async def claim(conn: Conn, scope: str, key: str, request_hash: str) -> tuple[int, Any] | None:
    """Insert the key; None when we own it now, else the stored (status, body) to replay.

    Raises IdempotencyKeyReused when the key was used with other parameters.
    """
    if await repository.insert_key(conn, scope, key, request_hash):
        return None
    row = await repository.stored_key(conn, scope, key)
    assert row is not None  # the conflicting row is committed: ON CONFLICT waited for it
    if row.request_hash != request_hash:
        raise IdempotencyKeyReused()
    return row.response_status, row.response_body


async def legacy_response(conn: Conn, user_id: str, key: str) -> tuple[int, Any] | None:
    """What the old service answered for this user's key, if it executed it before the cut-over."""
    row = await repository.stored_key(conn, f"legacy:{user_id}", key)
    return None if row is None else (row.response_status, row.response_body)


async def remember(
    conn: Conn, scope: str, key: str, status: int, body: Any, user_id: str | None = None
) -> None:
    await repository.store_response(conn, scope, key, status, body, user_id)


async def purge(pool: asyncpg.Pool, now: datetime, batch: int = 5000) -> int:
    """Forget request keys older than RETENTION, in small batches; returns how many."""
    removed = 0
    async with pool.acquire() as conn:
        while True:
            count = await repository.delete_request_keys(conn, now - RETENTION, batch)
            removed += count
            if count < batch:
                return removed
