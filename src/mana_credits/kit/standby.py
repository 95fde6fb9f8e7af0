"""Reads that stay up while the primary is away (issue #24 §3.4).

During a failover no primary answers for seconds (a node lost: about 20). Balance reads and the internal
sync status, which mana-sync's gate asks for every user, may then be answered by a standby: it has every
write acknowledged before the fault (synchronous replication) once it has replayed what it received. A read
goes to the primary unless the primary failed within the last second; when it fails with the database
unavailable, or has not answered within PRIMARY_WAIT (a frozen host never fails), the standby answers —
only one that has replayed everything it received and heard from the primary, or replayed a commit, within
STANDBY_READ_STALENESS seconds. Writes never go there: they answer 503 as before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from mana_credits.db.pool import Conn
from mana_credits.kit import repository
from mana_credits.kit.errors import DATABASE_UNAVAILABLE

T = TypeVar("T")

PRIMARY_WAIT = 1.0
# After a failure the primary is skipped this long, so reads do not each wait for it again.
SKIP_PRIMARY_FOR = 1.0


class StandbyReads:
    def __init__(self, standby: asyncpg.Pool | None, staleness: float) -> None:
        self.standby = standby
        self.staleness = staleness
        self._primary_failed_at = -SKIP_PRIMARY_FOR

    async def read(self, pool: asyncpg.Pool, query: Callable[[Conn], Awaitable[T]]) -> T:
        """`query` on `pool` (the primary, or the read replica), else on a current standby."""
        if self.standby is None:
            return await _on(pool, query)
        failure: BaseException | None = None
        if time.monotonic() - self._primary_failed_at >= SKIP_PRIMARY_FOR:
            attempt = asyncio.ensure_future(_on(pool, query))
            done, _ = await asyncio.wait({attempt}, timeout=PRIMARY_WAIT)
            if done:
                failure = attempt.exception()
                if failure is None:
                    return attempt.result()
                if not isinstance(failure, DATABASE_UNAVAILABLE):
                    raise failure
            else:  # it ends by its own timeouts; its outcome is nobody's
                attempt.add_done_callback(lambda task: task.cancelled() or task.exception())
                failure = TimeoutError(f"the primary did not answer within {PRIMARY_WAIT:g} s")
            self._primary_failed_at = time.monotonic()
        async with self.standby.acquire() as conn:
            if not await repository.standby_current(conn, self.staleness):
                raise failure or TimeoutError("no standby is current enough to answer")
            return await query(conn)

    async def close(self) -> None:
        if self.standby is not None:
            await self.standby.close()


async def _on(pool: asyncpg.Pool, query: Callable[[Conn], Awaitable[T]]) -> T:
    async with pool.acquire() as conn:
        return await query(conn)
