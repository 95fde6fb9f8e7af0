"""The keyless fractional charges of a process, decided together (ledger.accrual.charge_all) in one
transaction at a time, as the group commit (ledger.group) sends the whole-credit debits: N concurrent
charges cost one transaction of six round trips (begin, two locks, the rollups, the accruals,
commit) instead of N transactions.

A balance or accrual row another session holds longer than LOCK_TIMEOUT is skipped as in the group
commit: the transaction is started again skipping the rows still held, and their charges go alone,
waiting for their rows. A charge with an Idempotency-Key does not come here (kit.idempotency gives it
its own transaction).

Cut before the COMMIT was sent, a transaction applied nothing and its callers get the error (retryable).
Cut during the COMMIT, it may have committed: the ledger ids of its rollups tell (ledger.outcome). Found,
it committed; missing once its session is known to be gone, it did not; with no rollup to look for, or
the database not answering, the callers are told OutcomeUnknown, never to retry.
"""

from __future__ import annotations

import contextlib

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from mana_credits.kit.batching import Batcher
from mana_credits.ledger.accrual import Accrued, Charge, Decided, charge_all, one
from mana_credits.ledger.errors import OutcomeUnknown
from mana_credits.ledger.group import LOCK_TIMEOUT, Skipped, again_on_lock_conflicts, each_alone_on_data_error
from mana_credits.ledger.outcome import cut_off, is_open, settle


async def run_charges(
    pool: asyncpg.Pool, items: list[Charge], *, lock_timeout: str | None = None, skip_locked: bool = False
) -> list[Decided]:
    """`items` decided and committed in one transaction on a connection of `pool`."""
    conn: PoolConnectionProxy[asyncpg.Record] = await pool.acquire()  # failing here, nothing was sent
    pid = conn.get_server_pid()
    try:
        await conn.execute(f"BEGIN; SET LOCAL lock_timeout = '{lock_timeout}'" if lock_timeout else "BEGIN")
        outcomes = await charge_all(conn, items, skip_locked=skip_locked)
    except BaseException:
        # No COMMIT was sent: nothing is applied, whatever became of the session.
        with contextlib.suppress(Exception):
            if is_open(conn) and conn.is_in_transaction():
                await conn.execute("ROLLBACK")
            await pool.release(conn)
        raise
    try:
        await conn.execute("COMMIT")
    except BaseException as exc:
        if not cut_off(exc, conn):
            await pool.release(conn)
            raise
        assert isinstance(exc, Exception)
        ids = [o.entry.transaction.id for o in outcomes if isinstance(o, Accrued) and o.entry is not None]
        found, gone = await settle(pool, conn, pid, ids)
        if found:  # one transaction: a rollup in the ledger is all of it
            return outcomes
        if ids and gone:
            raise
        raise OutcomeUnknown() from exc
    # Done: the pool's reset failing now is the connection's matter, not the charges', whose answer is known.
    with contextlib.suppress(Exception):
        await pool.release(conn)
    return outcomes


async def charge_alone(pool: asyncpg.Pool, item: Charge) -> Accrued:
    """One keyless charge in a transaction of its own (GROUP_COMMIT off, or its row was held); raises
    InsufficientCredits, changing nothing."""
    return one(await run_charges(pool, [item]))


class FractionCommit:
    """One per process: charges queue while a transaction is in flight and go together in the next."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._batcher: Batcher[Charge, Accrued | Skipped] = Batcher(self._apply)

    async def charge(self, item: Charge) -> Accrued:
        """What this charge did, or raises InsufficientCredits (nothing of it was applied)."""
        outcome = await self._batcher.submit(item)
        if isinstance(outcome, Skipped):
            return await charge_alone(self.pool, item)
        return outcome

    async def aclose(self) -> None:
        await self._batcher.drained()

    async def _apply(self, items: list[Charge]) -> list[Accrued | Skipped | Exception]:
        return await each_alone_on_data_error(self._together, items)

    async def _together(self, items: list[Charge]) -> list[Accrued | Skipped | Exception]:
        async def attempt(skip_locked: bool) -> list[Accrued | Skipped | Exception]:
            return [*await run_charges(self.pool, items, lock_timeout=LOCK_TIMEOUT, skip_locked=skip_locked)]

        return await again_on_lock_conflicts(attempt)
