"""How new database connections are opened (issue #24 §3.3).

asyncpg's connect timeout covers all hosts of a multi-host URL together, so one host that drops packets
(a powered-off node, a partition) used it up and no connection reached the primary behind it. And with no
host answering, every request dialled on its own: ~140 attempts a second at 20 clients. The dialer gives
each host its own share of the timeout, tries the host that answered last first and a host that recently
did not answer in time last, and while nothing answers lets one attempt at a time per process run, backing
off between attempts; requests arriving meanwhile share that attempt's outcome (503 if it failed).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from typing import Any, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import asyncpg

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record]"

FIRST_BACKOFF = 0.05
# A failover takes seconds: retrying more often only loads the nodes, less often delays the recovery.
MAX_BACKOFF = 1.0
# How long a host that did not answer in time is tried after the others.
SILENT_FOR = 30.0
# The failures a connect attempt may end with while the database is away (what kit.errors answers 503).
UNREACHABLE = (
    OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError,
)  # fmt: skip


def split_hosts(dsn: str) -> list[str]:
    """One URL per host of a multi-host URL (`postgresql://u@h1:p1,h2:p2/db?…`), else the URL itself."""
    parts = urlsplit(dsn)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if "," not in hosts:
        return [dsn]
    return [urlunsplit(parts._replace(netloc=f"{userinfo}{at}{host}")) for host in hosts.split(",")]


class Dialer:
    """The `connect` of one pool (its state is the pool's view of the database hosts)."""

    def __init__(self) -> None:
        self._preferred: str | None = None  # the host of the last usable connection
        self._silent_since: dict[str, float] = {}  # host → when it last did not answer in time
        self._down = False  # the last attempt failed on every host
        self._backoff = 0.0
        self._retry_at = 0.0
        self._attempt: asyncio.Event | None = None  # set when the attempt under way ends
        self._failures = 0

    async def __call__(self, dsn: str | None = None, **kwargs: Any) -> Connection:
        while self._down:
            if self._attempt is not None:  # another request is trying: its outcome is ours
                failures = self._failures
                await self._attempt.wait()
                if self._failures > failures:
                    raise ConnectionError("the database is unreachable (the last connect attempt failed)")
                continue
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            self._attempt = asyncio.Event()
            try:
                return await self._dial(dsn, kwargs)
            finally:
                self._attempt.set()
                self._attempt = None
        return await self._dial(dsn, kwargs)

    async def _dial(self, dsn: str | None, kwargs: dict[str, Any]) -> Connection:
        try:
            conn = await self._first_usable(dsn, kwargs)
        except UNREACHABLE:
            self._down = True
            self._failures += 1
            self._backoff = min(MAX_BACKOFF, max(FIRST_BACKOFF, self._backoff * 2))
            self._retry_at = time.monotonic() + self._backoff * random.uniform(0.5, 1.0)
            raise
        self._down = False
        self._backoff = 0.0
        return conn

    async def _first_usable(self, dsn: str | None, kwargs: dict[str, Any]) -> Connection:
        hosts = split_hosts(dsn) if dsn else []
        if len(hosts) <= 1:
            single: Connection = await asyncpg.connect(dsn, **kwargs)
            return single
        options = dict(kwargs)
        timeout = float(options.pop("timeout", 60))
        deadline = time.monotonic() + timeout
        share = max(1.0, timeout / len(hosts))
        now = time.monotonic()

        def silent(host: str) -> bool:
            return now - self._silent_since.get(host, -math.inf) < SILENT_FOR

        # Stable: the URL's order among equals.
        order = sorted(hosts, key=lambda host: (silent(host), host != self._preferred))
        error: Exception = TimeoutError(f"no database host answered within {timeout:g} s")
        for host in order:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                # One host at a time, as libpq: target_session_attrs then refuses a standby per host.
                conn: Connection = await asyncpg.connect(host, timeout=min(share, left), **options)
            except TimeoutError as exc:
                self._silent_since[host] = time.monotonic()
                error = exc
            except UNREACHABLE as exc:
                error = exc
            else:
                self._preferred = host
                self._silent_since.pop(host, None)
                return conn
        raise error
