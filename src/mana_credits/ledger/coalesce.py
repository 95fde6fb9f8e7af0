"""Debits of one account arriving together, applied as one balance update (a hot account).

Per process, at most one debit write per account is in flight here. A debit that finds its account busy
joins the next batch; when the write in flight ends, everything queued meanwhile is applied in one
transaction: the balance row is locked, each debit is decided in arrival order against the running
balance (one the rest cannot cover gets its own 402, as if it had come alone at that point), and one
statement moves the balance by the accepted sum while each accepted debit gets its own ledger row and
usage row. Every caller gets its own Entry or InsufficientCredits. A debit that finds its account idle
runs alone, as `repository.debit`. Debits with an idempotency key do not come here: they claim the key
in their own transaction (kit.idempotency), and the row lock orders them with these batches.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec

from mana_credits.db.pool import Conn
from mana_credits.kit import money_metrics
from mana_credits.kit.errors import InsufficientCredits
from mana_credits.ledger.models import Entry, Transaction, TxType
from mana_credits.ledger.repository import USAGE_DAY, debit

_DEBIT_BATCH = (
    """
WITH b AS (
  UPDATE credits.balances
  SET balance = balance - $2::integer, total_spent = total_spent + $2::integer, version = version + 1,
      updated_at = now()
  WHERE user_id = $1
  RETURNING balance
), r AS (
  SELECT * FROM unnest($3::uuid[], $4::integer[], $5::integer[], $6::text[], $7::text[], $8::text[])
    AS r(id, amount, before, app_id, description, metadata)
), tx AS (
  INSERT INTO credits.transactions
    (id, user_id, type, status, amount, balance_before, balance_after, app_id, description, metadata,
     completed_at)
  SELECT r.id, $1, 'usage', 'completed', -r.amount, r.before, r.before - r.amount, r.app_id, r.description,
         r.metadata::jsonb, now()
  FROM r, b
  RETURNING *
), usage AS (
  INSERT INTO credits.usage_stats (user_id, app_id, credits_used, date, metadata)
  SELECT $1, r.app_id, r.amount, """
    + USAGE_DAY
    + """, r.metadata::jsonb FROM r, b
)
SELECT * FROM tx
"""
)


@dataclass(frozen=True, slots=True)
class UsageDebit:
    """A usage debit (`POST /credits/use`) without an idempotency key."""

    user_id: str
    amount: int
    app_id: str
    description: str
    metadata: dict[str, Any] | None = None


Outcome = Entry | InsufficientCredits


async def apply_batch(conn: Conn, user_id: str, items: list[UsageDebit]) -> list[Outcome]:
    """Decide and apply `items` (one account, arrival order) in one transaction; one outcome per item."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT balance, total_earned, total_spent FROM credits.balances WHERE user_id = $1 FOR UPDATE",
            user_id,
        )
        running = row["balance"] if row is not None else 0
        outcomes: list[Outcome | uuid.UUID] = []
        accepted: list[tuple[uuid.UUID, UsageDebit, int]] = []
        for item in items:
            # The same rule as the one-statement debit: the balance must cover the amount.
            if row is None or running < item.amount:
                outcomes.append(InsufficientCredits(required=item.amount, available=running))
                continue
            tx_id = uuid.uuid4()
            accepted.append((tx_id, item, running))
            outcomes.append(tx_id)
            running -= item.amount
        rows = [] if not accepted else await conn.fetch(
            _DEBIT_BATCH, user_id, sum(item.amount for _, item, _ in accepted),
            [tx_id for tx_id, _, _ in accepted], [item.amount for _, item, _ in accepted],
            [before for _, _, before in accepted], [item.app_id for _, item, _ in accepted],
            [item.description for _, item, _ in accepted],
            [None if item.metadata is None else msgspec.json.encode(item.metadata).decode()
             for _, item, _ in accepted],
        )  # fmt: skip
    assert len(rows) == len(accepted)
    for item, outcome in zip(items, outcomes, strict=True):
        if isinstance(outcome, InsufficientCredits):
            money_metrics.INSUFFICIENT.labels(item.app_id).inc()
        else:
            money_metrics.moved(-item.amount, item.app_id, "usage")
    by_id = {r["id"]: r for r in rows}
    entries: dict[uuid.UUID, Entry] = {}
    spent = row["total_spent"] if row is not None else 0
    for tx_id, item, before in accepted:
        spent += item.amount
        entries[tx_id] = Entry(
            transaction=Transaction.from_row(by_id[tx_id]),
            balance=before - item.amount,
            total_earned=row["total_earned"] if row is not None else 0,
            total_spent=spent,
        )
    return [entries[o] if isinstance(o, uuid.UUID) else o for o in outcomes]


class Coalescer:
    """One per process: queues debits per busy account and applies each queue as one batch."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._queues: dict[str, list[tuple[UsageDebit, asyncio.Future[Entry]]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def debit(self, item: UsageDebit) -> Entry:
        """The Entry of this debit, or raises InsufficientCredits (nothing of it was applied)."""
        queue = self._queues.get(item.user_id)
        if queue is not None:
            future: asyncio.Future[Entry] = asyncio.get_running_loop().create_future()
            queue.append((item, future))
            return await future
        self._queues[item.user_id] = []
        try:
            async with self.pool.acquire() as conn:
                return await debit(
                    conn, item.user_id, item.amount, type=TxType.USAGE, app_id=item.app_id,
                    description=item.description, metadata=item.metadata, record_usage=True,
                )  # fmt: skip
        finally:
            self._next(item.user_id)

    def _next(self, user_id: str) -> None:
        """The write for `user_id` ended: start the batch that queued meanwhile, or mark the account idle."""
        batch = self._queues.pop(user_id)
        if batch:
            self._queues[user_id] = []
            task = asyncio.create_task(self._run(user_id, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, user_id: str, batch: list[tuple[UsageDebit, asyncio.Future[Entry]]]) -> None:
        try:
            async with self.pool.acquire() as conn:
                outcomes = await apply_batch(conn, user_id, [item for item, _ in batch])
        except BaseException as exc:  # the batch changed nothing: every caller gets the error
            for _, future in batch:
                if future.done():
                    continue
                if isinstance(exc, Exception):
                    future.set_exception(exc)
                else:
                    future.cancel()
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():  # the caller went away; its debit stands, as a sent statement would
                    continue
                if isinstance(outcome, InsufficientCredits):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
        finally:
            self._next(user_id)
