"""Group commit of usage debits: the keyless debits that arrive while a batch is in flight, of any accounts,
are applied together by the next batch, in one statement (one round trip, atomic by itself).

In the statement the balance rows are locked in user-id order (two batches, or a batch and a transfer,
never wait on each other crosswise), then each debit is decided in arrival order against its account's
running balance: one the rest cannot cover gets its own 402, as if it had come alone at that point, and
the next may still fit. Each account's balance moves once by its accepted sum; each accepted debit gets its
own ledger row and usage row, and every caller its own Entry or InsufficientCredits. Debits with an
idempotency key do not come here: they claim the key in their own transaction (kit.idempotency), and the
row lock orders them with these batches. A row another session holds longer than LOCK_TIMEOUT (a renewal
run, an erasure, a stuck session) is skipped and its debits go the single-debit way: the batch goes on.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from mana_credits.db.pool import Conn
from mana_credits.kit import money_metrics
from mana_credits.kit.batching import Batcher
from mana_credits.kit.errors import InsufficientCredits
from mana_credits.ledger.outcome import cut_off, is_open, settle, told
from mana_credits.ledger.repository import debit
from mana_credits.ledger.rule import MOVE_COLUMNS, WRITES, json_texts, new_ids, spend
from mana_credits.ledger.schemas import Entry, Transaction, TxType


# seq: the debits with their place among their account's (k = 1, 2, ...) and their ledger id. cur: the
# balance rows, locked in user-id order (`lock`: wait, or skip rows another session holds). d: the
# decisions, one account step per recursion level, carrying the running balance. s: the accepted sum per
# account, moved once in b. moves: the accepted debits, for accounts b moved. One result row per debit, in
# arrival order; `skipped`: its account's row exists but was not locked (left to the single-debit way).
def _group_debit(lock: str) -> str:
    return f"""
WITH RECURSIVE seq AS MATERIALIZED (
  SELECT r.*, row_number() OVER (PARTITION BY r.user_id ORDER BY r.n) AS k
  FROM unnest($1::text[], $2::integer[], $3::text[], $4::text[], $5::text[], $6::uuid[], $7::text[])
    WITH ORDINALITY AS r(user_id, amount, app_id, description, metadata, id, idempotency_key, n)
), cur AS MATERIALIZED (
  SELECT bal.user_id, bal.balance, bal.total_earned, bal.total_spent
  FROM credits.balances bal
  WHERE bal.user_id = ANY($1::text[])
  ORDER BY bal.user_id
  {lock}
), d AS (
  SELECT cur.user_id, 0::bigint AS k, cur.balance::bigint AS running, NULL::bigint AS before, false AS ok
  FROM cur
  UNION ALL
  SELECT d.user_id, seq.k, CASE WHEN d.running >= seq.amount THEN d.running - seq.amount ELSE d.running END,
         d.running, d.running >= seq.amount
  FROM d JOIN seq ON seq.user_id = d.user_id AND seq.k = d.k + 1
), s AS (
  SELECT d.user_id, sum(seq.amount)::integer AS total
  FROM d JOIN seq USING (user_id, k) WHERE d.ok GROUP BY d.user_id
), b AS ({spend("s.total", source="s", where="bal.user_id = s.user_id", returning="bal.user_id, bal.balance")}
), moves ({MOVE_COLUMNS}) AS (
  SELECT seq.id, seq.user_id, 'usage'::public.transaction_type, -seq.amount, d.before - seq.amount,
         seq.app_id, seq.description, seq.metadata::jsonb, seq.idempotency_key, true
  FROM d JOIN seq USING (user_id, k) JOIN b USING (user_id)
  WHERE d.ok
), {WRITES}
SELECT seq.n AS debit_number, COALESCE(d.before, 0) AS available, cur.total_earned AS earned_before,
       cur.total_spent AS spent_before, cur.balance AS balance_was, b.balance AS balance_now,
       cur.user_id IS NULL AND EXISTS (SELECT FROM credits.balances x WHERE x.user_id = seq.user_id)
         AS skipped, tx.*
FROM seq LEFT JOIN d USING (user_id, k) LEFT JOIN cur USING (user_id) LEFT JOIN b USING (user_id)
  LEFT JOIN tx ON tx.id = seq.id
ORDER BY seq.n
"""


_GROUP_DEBIT = _group_debit("FOR UPDATE")
_GROUP_DEBIT_SKIPPING = _group_debit("FOR UPDATE SKIP LOCKED")

# How long a batch waits for a balance row another session holds (set on the connection the batches keep,
# undone by the pool's reset when it goes back). Longer than another worker's batch holds a hot account;
# past it the batch is sent again skipping the rows still held, and their debits go the single-debit way,
# which waits up to the statement timeout: one locked account never holds up the others' debits.
LOCK_TIMEOUT = "100ms"

# A batch that loses a deadlock to another multi-row writer changed nothing and is sent again.
DEADLOCK_RETRIES = 3

# A kept connection unused for longer goes back to the pool, whose rules for idle connections then apply as
# to any other: one left idle for hours may have been dropped without a word on the way (the idle timeout
# of a NAT or load balancer), and the first batch of the morning would wait out its timeout on it.
KEEP_IDLE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class UsageDebit:
    """A usage debit (`POST /credits/use`). The group commit takes those without an idempotency key; the
    key is for ledger.accrual, whose rollups this statement writes too."""

    user_id: str
    amount: int
    app_id: str
    description: str
    metadata: dict[str, Any] | None = None
    idempotency_key: str | None = None


class Skipped:
    """A debit a batch left alone: another session held its account's balance row."""


SKIPPED = Skipped()
Outcome = Entry | InsufficientCredits | Skipped


async def apply_batch(
    conn: Conn, items: list[UsageDebit], *, ids: list[UUID] | None = None, skip_locked: bool = False
) -> list[Outcome]:
    """Decide and apply `items` (any accounts, arrival order) in one statement; one outcome per item.
    `ids`: their ledger ids (chosen here without). With `skip_locked`, the debits of accounts whose row
    another session holds are SKIPPED, not waited for."""
    assert all(item.amount > 0 for item in items)
    rows = await conn.fetch(
        _GROUP_DEBIT_SKIPPING if skip_locked else _GROUP_DEBIT,
        [item.user_id for item in items],
        [item.amount for item in items],
        [item.app_id for item in items],
        [item.description for item in items],
        json_texts(item.metadata for item in items),
        ids or new_ids(len(items)),
        [item.idempotency_key for item in items],
    )
    assert [row["debit_number"] for row in rows] == list(range(1, len(items) + 1))
    outcomes: list[Outcome] = []
    spent: dict[str, int] = {}  # an account's total spent after its debits so far in this batch
    taken: Counter[str] = Counter()  # per app: counted once a batch (a metric update takes a lock)
    refused: Counter[str] = Counter()
    for item, row in zip(items, rows, strict=True):
        if row["skipped"]:
            outcomes.append(SKIPPED)
            continue
        if row["id"] is None:
            refused[item.app_id] += 1
            outcomes.append(InsufficientCredits(required=item.amount, available=row["available"]))
            continue
        taken[item.app_id] += item.amount
        spent[item.user_id] = spent.get(item.user_id, row["spent_before"]) + item.amount
        outcomes.append(
            Entry(
                transaction=Transaction.from_row(row),
                balance=row["balance_after"],
                total_earned=row["earned_before"],
                total_spent=spent[item.user_id],
            )
        )
    _assert_applied(rows)
    for app_id, amount in taken.items():
        money_metrics.moved(-amount, app_id, "usage")
    for app_id, count in refused.items():
        money_metrics.refused(app_id, count)
    return outcomes


async def usage_debit(pool: asyncpg.Pool, item: UsageDebit) -> Entry:
    """A keyless usage debit the single-debit way, on a connection of its own, whose caller is told the
    truth after a cut (ledger.outcome); InsufficientCredits when the balance cannot cover it."""
    [tx_id] = new_ids(1)
    conn = await pool.acquire()  # failing here, nothing was sent
    pid = conn.get_server_pid()
    try:
        entry = await debit(
            conn, item.user_id, item.amount, type=TxType.USAGE, app_id=item.app_id,
            description=item.description, metadata=item.metadata, record_usage=True, tx_id=tx_id,
        )  # fmt: skip
    except BaseException as exc:
        if not cut_off(exc, conn):
            await pool.release(conn)
            raise
        assert isinstance(exc, Exception)
        found, gone = await settle(pool, conn, pid, [tx_id])
        outcome = told(found, gone, tx_id, exc)
        if outcome is exc:
            raise
        if isinstance(outcome, Exception):
            raise outcome from exc
        return outcome
    # Done: the pool's reset failing now (a backend killed just after the commit) is the connection's
    # matter, not the debit's, whose answer is known.
    with contextlib.suppress(Exception):
        await pool.release(conn)
    return entry


def _assert_applied(rows: list[asyncpg.Record]) -> None:
    """The ledger invariant where the batch decided it (ledger package header): each ledger row's
    before + amount = after, chained from the balance it found; each account moved by its accepted sum."""
    running: dict[str, int] = {}
    for row in rows:
        if row["id"] is None:
            continue
        before = running.get(row["user_id"], row["balance_was"])
        assert row["balance_before"] == before and before + row["amount"] == row["balance_after"], row
        running[row["user_id"]] = row["balance_after"]
    for row in rows:
        if row["user_id"] in running:
            assert running[row["user_id"]] == row["balance_now"], row


Item = TypeVar("Item")
Result = TypeVar("Result")


async def each_alone_on_data_error(
    together: Callable[[list[Item]], Awaitable[list[Result]]], items: list[Item]
) -> list[Result | Exception]:
    """`together(items)`; when a value the database refuses (a NUL character) fails the one statement or
    transaction of them all, each item is decided on its own, and only the one that carried it fails."""
    try:
        return [*await together(items)]
    except asyncpg.DataError:
        if len(items) == 1:
            raise
    outcomes: list[Result | Exception] = []
    for item in items:
        try:
            outcomes += await together([item])
        except asyncpg.DataError as exc:
            outcomes.append(exc)
    return outcomes


async def again_on_lock_conflicts(attempt: Callable[[bool], Awaitable[Result]]) -> Result:
    """`attempt(skip_locked)`, which applies nothing when it raises a lock conflict: past LOCK_TIMEOUT on a
    row another session holds, again skipping the rows still held; a lost deadlock, again as it was."""
    retries, skip_locked = DEADLOCK_RETRIES, False
    while True:
        try:
            return await attempt(skip_locked)
        except asyncpg.LockNotAvailableError:
            if skip_locked:
                raise
            skip_locked = True
        except asyncpg.DeadlockDetectedError:
            if retries == 0:
                raise
            retries -= 1


class GroupCommit:
    """One per process: debits queue while a batch is in flight and go out together in the next.

    The batches keep one connection of the pool between them instead of checking one out and back in for
    each: a batch is one autocommit statement that leaves no session state, so the pool's reset query (a
    round trip, and more client CPU than the batch's own statement) is work for nothing. A connection that
    failed other than by an error PostgreSQL answered, or that the server closed, goes back to the pool
    (whose release resets or closes it) and the next batch takes another, so an exchange cut half-way never
    carries over; so does one left unused for a while.
    """

    def __init__(self, pool: asyncpg.Pool, *, keep_idle_seconds: float = KEEP_IDLE_SECONDS) -> None:
        self.pool = pool
        self._batcher: Batcher[UsageDebit, Entry | Skipped] = Batcher(self._apply)
        self._conn: PoolConnectionProxy[asyncpg.Record] | None = None
        self._keep_idle_seconds = keep_idle_seconds
        self._used_at = 0.0  # time.monotonic() of the kept connection's last batch

    async def debit(self, item: UsageDebit) -> Entry:
        """The Entry of this debit, or raises InsufficientCredits (nothing of it was applied)."""
        outcome = await self._batcher.submit(item)
        if isinstance(outcome, Skipped):
            return await self._alone(item)
        return outcome

    async def _alone(self, item: UsageDebit) -> Entry:
        """A skipped debit, the single-debit way: it waits for its row, and no batch waits with it."""
        return await usage_debit(self.pool, item)

    async def aclose(self) -> None:
        """Give the kept connection back to the pool once the batch in flight is answered."""
        await self._batcher.drained()
        await self._give_back()

    async def _apply(self, items: list[UsageDebit]) -> list[Entry | Skipped | Exception]:
        return await each_alone_on_data_error(self._apply_together, items)

    async def _apply_together(self, items: list[UsageDebit]) -> list[Entry | Skipped | Exception]:
        ids = new_ids(len(items))

        async def attempt(skip_locked: bool) -> list[Entry | Skipped | Exception]:
            conn = await self._connection()
            pid = conn.get_server_pid()
            try:
                return [*await apply_batch(conn, items, ids=ids, skip_locked=skip_locked)]
            except BaseException as exc:
                if not cut_off(exc, conn):
                    # An error PostgreSQL answered (nothing applied), or a cancellation: the pool's
                    # release waits for the statement's cancellation and resets the session, or closes it.
                    if not isinstance(exc, asyncpg.PostgresError):
                        await self._give_back()
                    raise
                # The session was cut (a lost socket, a killed backend, a timeout racing the commit):
                # the batch may have committed. Find out before anyone is answered (ledger.outcome).
                assert isinstance(exc, Exception)
                self._conn = None
                found, gone = await settle(self.pool, conn, pid, ids)
                return [told(found, gone, tx_id, exc) for tx_id in ids]

        return await again_on_lock_conflicts(attempt)

    async def _connection(self) -> PoolConnectionProxy[asyncpg.Record]:
        now = time.monotonic()
        idle_too_long = now - self._used_at > self._keep_idle_seconds
        if self._conn is not None and (idle_too_long or not is_open(self._conn)):
            await self._give_back()
        if self._conn is None:
            conn = await self.pool.acquire()
            try:
                await conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
            except BaseException:
                await self.pool.release(conn)
                raise
            self._conn = conn
        self._used_at = now
        return self._conn

    async def _give_back(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self.pool.release(conn)
