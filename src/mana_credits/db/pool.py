"""asyncpg pool with JSON codecs; SQL lives in each domain's repository module."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from mana_credits.db.dialer import Dialer


def _encode_json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


async def init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=_encode_json, decoder=msgspec.json.decode, schema="pg_catalog", format="text"
        )


# The code relies on READ COMMITTED (a conditional UPDATE re-checks its row after waiting; a duplicate
# sees the first request's committed idempotency key). Set it per session, so a database or role that
# defaults to another level (an adopted one may) cannot turn duplicates into serialization errors.
SESSION = {"timezone": "UTC", "default_transaction_isolation": "read committed"}


async def create_pool(dsn: str, *, size: int = 5, min_size: int = 1) -> asyncpg.Pool:
    """asyncpg's reset query on release stays although it costs a round trip per request: it is also what
    finds a connection an outage left half-way through a message exchange, and closes it instead of
    handing it to the next request (a no-op reset let one such connection answer a 500). The group commit
    keeps one connection between its batches instead (ledger.group says why that is safe there)."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=size,
        init=init_connection,
        connect=Dialer(),
        # A database that is down or hung answers 503 within these bounds instead of holding requests.
        timeout=5,
        command_timeout=30,
        server_settings={**SESSION, "application_name": "mana-credits"},
    )
    assert pool is not None
    return pool


# A standby, or a database made read-only: the service would answer reads and fail every write.
WRITABLE = "SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'"


def rows_changed(status: str) -> int:
    """The row count of a command status asyncpg returns from `execute` ("UPDATE 3", "INSERT 0 1")."""
    return int(status.rsplit(" ", 1)[-1])


async def connect(dsn: str) -> asyncpg.Connection:
    conn = await Dialer()(dsn, server_settings=SESSION)
    await init_connection(conn)
    return conn


# A connection straight from asyncpg or checked out of the pool: repositories accept either.
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
