"""The truth about a debit whose connection was cut before its answer came back (a killed backend, a
failover, a statement past the client's timeout racing its COMMIT): it may be in the ledger although the
caller saw an error, and a caller told "retry" would be charged twice.

The ledger ids are chosen before the statement is sent (rule.new_ids). After a cut, the session that ran
it is ended for good (pg_terminate_backend, waiting until it is gone, so nothing can commit later), then
a fresh connection looks the ids up: a row found is answered as done; an id missing once the session is
known to be gone (or once its statement is known to have committed without it) was not written, and the
caller gets the usual retryable error; anything else is OutcomeUnknown, which never advises a retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from mana_credits.kit import money_metrics
from mana_credits.kit.errors import DATABASE_UNAVAILABLE
from mana_credits.ledger.errors import OutcomeUnknown
from mana_credits.ledger.schemas import Entry, Transaction

log = logging.getLogger("mana_credits.ledger")

# How long finding out may take before the answer is OutcomeUnknown (the database may be restarting).
SETTLE_SECONDS = 5.0
_GONE_WAIT_MS = 3000

# True once the backend is gone (or never was); false when it outlived the wait.
_STOP = """
SELECT CASE WHEN EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1) THEN pg_terminate_backend($1, $2)
            ELSE true END
"""
_FIND = """
SELECT t.*, b.total_earned AS now_total_earned, b.total_spent AS now_total_spent
FROM credits.transactions t JOIN credits.balances b USING (user_id)
WHERE t.id = ANY($1::uuid[])
"""


def is_open(conn: asyncpg.Connection | PoolConnectionProxy[asyncpg.Record]) -> bool:
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:  # closed, and already taken back by its pool
        return False


def cut_off(exc: BaseException, conn: asyncpg.Connection | PoolConnectionProxy[asyncpg.Record]) -> bool:
    """Whether a statement that raised `exc` may have committed: anything but an error PostgreSQL
    answered on a session that lives on (that one rolled the statement back). A session ending (FATAL:
    a terminated backend, a shutdown) can be told after the COMMIT, before the socket is seen closed."""
    if not isinstance(exc, Exception):
        return False  # a cancellation: the caller is gone (its connection is reset by the pool)
    if isinstance(exc, asyncpg.PostgresError) and getattr(exc, "severity", None) not in ("FATAL", "PANIC"):
        return not is_open(conn)
    return True


def entry_of(row: asyncpg.Record) -> Entry:
    """A debit found after a cut. Its row is exact; the totals are the account's as read now."""
    return Entry(
        transaction=Transaction.from_row(row),
        balance=row["balance_after"],
        total_earned=row["now_total_earned"],
        total_spent=row["now_total_spent"],
    )


async def settle(
    pool: asyncpg.Pool, conn: PoolConnectionProxy[asyncpg.Record], pid: int, ids: list[UUID]
) -> tuple[dict[UUID, Entry], bool]:
    """End the cut session `conn` (checked out of `pool`, given back closed; `pid`: its backend's, read
    before the statement) and find which of `ids` the ledger holds: ({id: entry}, whether the session is
    known to be gone). Raises OutcomeUnknown when the database cannot be asked within SETTLE_SECONDS."""
    with contextlib.suppress(Exception):  # closed already, and perhaps back in the pool
        conn.terminate()
        await pool.release(conn)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    while True:
        try:
            async with asyncio.timeout(max(0.1, deadline - loop.time())), pool.acquire() as fresh:
                gone = bool(await fresh.fetchval(_STOP, pid, _GONE_WAIT_MS))
                rows = await fresh.fetch(_FIND, ids)
            break
        # Whatever stands between us and the answer (the database restarting, unreachable, or for a moment
        # without a writable server during a failover, which asyncpg's connect tells as an internal client
        # error) is waited out until the deadline: no error may escape as "nothing was done".
        except (*DATABASE_UNAVAILABLE, asyncpg.PostgresError) as exc:
            if loop.time() >= deadline:
                raise OutcomeUnknown() from exc
            await asyncio.sleep(0.2)
    found = {row["id"]: entry_of(row) for row in rows}
    log.warning(
        "a debit's session was cut: backend %s %s, %d of %d ledger ids found",
        pid, "gone" if gone else "outlived the wait", len(found), len(ids),
    )  # fmt: skip
    for entry in found.values():
        money_metrics.moved(entry.transaction.amount, entry.transaction.app_id, entry.transaction.type)
    return found, gone


def told(found: dict[UUID, Entry], gone: bool, tx_id: UUID, exc: Exception) -> Entry | Exception:
    """What a debit's caller is told after `settle`: its entry, the error it got when nothing of it was
    written for certain (the session is gone, or its statement committed without it), else OutcomeUnknown."""
    if tx_id in found:
        return found[tx_id]
    return exc if gone or found else OutcomeUnknown()
