"""Holds (reservations): reserve before an AI call, commit the real cost afterwards, or release.

Every reservation resolves at most once. Commit, release and the expiry sweep each *claim* the row with a
conditional `UPDATE … WHERE status = 'reserved'`; the loser sees no row and gets a 409. The balance moves
(via the ledger) in the same transaction as the claim, so a rolled-back claim moves nothing.

Holds never make work free. A hold still reserved past its `expires_at` (the sweep has not run yet) is
committed as usual. A hold the expiry sweep already released is marked `released_by_expiry`; a commit that
arrives for it afterwards (a research job polled hours later) charges what was used straight from the
balance, as a normal debit with its own 402, and claims the reservation so that it charges once.
A hold the caller released itself cannot be committed.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from mana_credits import ledger
from mana_credits.credits import repository
from mana_credits.credits.errors import AmountExceedsReservation, ReservationResolved
from mana_credits.db.pool import Conn
from mana_credits.kit import money_metrics
from mana_credits.kit.errors import CreditsError, InsufficientCredits, NotFound

SWEEP_BATCH = 500

log = logging.getLogger("mana_credits.holds")


@dataclass(frozen=True, slots=True)
class Reserved:
    reservation_id: UUID
    balance: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Committed:
    user_id: str
    transaction_id: UUID | None


@dataclass(frozen=True, slots=True)
class Released:
    user_id: str
    balance: int


async def reserve(
    conn: Conn, *, user_id: str, amount: int, reason: str, app_id: str, ttl_seconds: int, now: datetime
) -> Reserved:
    """Move `amount` into `reserved` and record the hold; the caller owns the transaction."""
    try:
        balance = await ledger.hold(conn, user_id, amount)
    except InsufficientCredits:
        money_metrics.refused(app_id)
        raise
    expires_at = now + timedelta(seconds=ttl_seconds)
    reservation_id = await repository.insert_reservation(
        conn, user_id=user_id, amount=amount, reason=reason, app_id=app_id, expires_at=expires_at, now=now
    )
    return Reserved(reservation_id=reservation_id, balance=balance.balance, expires_at=expires_at)


async def commit(
    conn: Conn,
    reservation_id: UUID,
    *,
    amount: int | None,
    description: str | None,
    owner: str | None,
    now: datetime,
    idempotency_key: str | None,
) -> Committed:
    """Spend `amount` (default: all) of the hold and release the rest.

    `amount == 0` spends nothing: the hold is released and recorded as `refunded` (no ledger row).
    `owner` (the app of a per-app key) restricts which reservations the caller may resolve.
    """
    status = "refunded" if amount == 0 else "committed"
    row = await repository.claim_for_commit(conn, reservation_id, status, now, amount, owner)
    late = row is None and amount != 0
    if late:
        row = await repository.claim_for_late_commit(conn, reservation_id, now, amount, owner)
    if row is None:
        raise await _why_not(conn, reservation_id, owner, amount)
    if amount == 0:
        await ledger.release_hold(conn, row.user_id, row.amount)
        return Committed(user_id=row.user_id, transaction_id=None)
    app_id = row.app_id or legacy_app_id(row.reason)
    metadata = {"reservationId": str(reservation_id), "reason": row.reason}
    if late:
        # The hold is gone: a plain debit, which raises InsufficientCredits (402) and rolls the claim back.
        entry = await ledger.debit(
            conn,
            row.user_id,
            row.committed_amount,
            type=ledger.TxType.USAGE,
            app_id=app_id,
            description=description or row.reason,
            metadata={**metadata, "lateCommit": True},
            idempotency_key=idempotency_key,
            record_usage=True,
        )
    else:
        entry = await ledger.settle_hold(
            conn,
            row.user_id,
            row.amount,
            row.committed_amount,
            app_id=app_id,
            description=description or row.reason,
            metadata=metadata,
            idempotency_key=idempotency_key,
        )
    await repository.link_transaction(conn, reservation_id, entry.transaction.id)
    return Committed(user_id=row.user_id, transaction_id=entry.transaction.id)


async def release(conn: Conn, reservation_id: UUID, *, owner: str | None, now: datetime) -> Released:
    """Give the whole hold back; whose it was and the balance afterwards."""
    row = await repository.claim_for_release(conn, reservation_id, now, owner)
    if row is None:
        raise await _why_not(conn, reservation_id, owner, None)
    balance = await ledger.release_hold(conn, row.user_id, row.amount)
    return Released(user_id=row.user_id, balance=balance.balance)


def legacy_app_id(reason: str) -> str:
    """The app the old service wrote for a hold without a calling app: the reason's prefix."""
    return reason.split(":", 1)[0] or "mana-research"


async def _why_not(conn: Conn, reservation_id: UUID, owner: str | None, amount: int | None) -> CreditsError:
    """Explain a failed claim (read after the fact; the claim itself decided)."""
    row = await repository.reservation(conn, reservation_id)
    if row is None or (owner is not None and row.app_id != owner):
        return NotFound("Reservation not found")
    late_commit_possible = row.released_by_expiry and row.transaction_id is None and amount != 0
    if row.status != "reserved" and not late_commit_possible:
        return ReservationResolved(details={"status": row.status})
    return AmountExceedsReservation(details={"reserved": row.amount, "requested": amount})


async def sweep_expired(pool: asyncpg.Pool, now: datetime, batch: int = SWEEP_BATCH) -> int:
    """Release every hold expired at `now`; returns how many. Safe to run in several processes at once."""
    released = 0
    while True:
        this_round = 0
        async with pool.acquire() as conn, conn.transaction():
            rows = await repository.claim_expired(conn, now, batch)
            per_user: defaultdict[str, list[repository.ReleasedHold]] = defaultdict(list)
            for row in rows:
                per_user[row.user_id].append(row)
            # Sorted so two sweepers lock balance rows in the same order.
            for user_id in sorted(per_user):
                if await _release_claimed(conn, user_id, per_user[user_id]):
                    this_round += len(per_user[user_id])
        released += this_round
        # A round that released nothing would only claim the same put-back holds again.
        if len(rows) < batch or this_round == 0:
            return released


async def _release_claimed(conn: Conn, user_id: str, claimed: list[repository.ReleasedHold]) -> bool:
    """Release one user's claimed holds in a savepoint: a user whose release fails (a damaged balance
    row) is logged and left reserved for the next sweep, and does not hold back everybody else's."""
    try:
        async with conn.transaction():
            await ledger.release_hold(conn, user_id, sum(row.amount for row in claimed))
        return True
    except asyncpg.PostgresError:
        log.exception("could not release expired holds of %s; leaving them reserved", user_id)
        await repository.put_back_reserved(conn, [row.id for row in claimed])
        return False
