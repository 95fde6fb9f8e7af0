"""Brute-force guard for gift codes: at most LIMIT unknown-code guesses per WINDOW, per user and per IP.

Gift creations and cancellations are limited per user the same way (WRITE_LIMIT).

Attempts live in the database (an UNLOGGED table: losing them on a crash is harmless), so every replica
sees the same counts. Each attempt is recorded *before* the code is looked at and counted together with
the attempts still in flight, so a burst of parallel guesses cannot slip past the limit; the record is
dropped again when the code turned out to exist. Only unknown codes count against an IP: losing a redeem
race or opening a gift meant for someone else is not a guess, and must not lock out others behind the
same IP. A refused redeem still counts against the user, so refusals (each stored as a row) are bounded.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import asyncpg

from mana_credits.gifts import repository
from mana_credits.kit.errors import TooManyRequests

LIMIT = 10
WINDOW = timedelta(minutes=1)
# Gift creations and cancellations per user and WINDOW (each moves money and writes rows).
WRITE_LIMIT = 30


def subjects(*, ip: str | None, user_id: str | None = None) -> list[str]:
    found = [f"ip:{ip}"] if ip else []
    return [*found, f"user:{user_id}"] if user_id else found


async def admit(
    pool: asyncpg.Pool,
    who: list[str],
    now: datetime,
    *,
    limit: int = LIMIT,
    message: str = "Too many failed gift code attempts; try again later",
) -> list[int]:
    """Record an attempt for each subject; raise TooManyRequests (recording nothing) when over `limit`.

    Returns the attempt ids, one per subject in order: pass them to `forgive` unless the attempt was a
    failed guess.
    """
    if not who:
        return []
    async with pool.acquire() as conn:
        ids = await repository.record_attempts(conn, who, now)
        # A separate statement: it sees every attempt committed before it, ours included.
        over = await repository.subjects_over(conn, who, now - WINDOW, limit)
        if not over:
            return ids
        await repository.delete_attempts(conn, ids)
        # Free again when the limit-th newest attempt leaves the window.
        waits = [await repository.nth_newest_attempt(conn, subject, now - WINDOW, limit) for subject in over]
    retry = max(((at + WINDOW - now).total_seconds() for at in waits if at is not None), default=1.0)
    raise TooManyRequests(message, retry_after=_whole(retry))


async def admit_write(pool: asyncpg.Pool, user_id: str, now: datetime) -> None:
    """Count a gift creation or cancellation against the user's WRITE_LIMIT (429 past it)."""
    await admit(
        pool,
        [f"write:{user_id}"],
        now,
        limit=WRITE_LIMIT,
        message="Too many gift creations or cancellations; try again later",
    )


async def forgive(pool: asyncpg.Pool, ids: list[int]) -> None:
    """The attempt was not a failed guess: stop counting it."""
    if ids:
        async with pool.acquire() as conn:
            await repository.delete_attempts(conn, ids)


async def prune(pool: asyncpg.Pool, now: datetime) -> int:
    async with pool.acquire() as conn:
        return await repository.delete_attempts_until(conn, now - WINDOW)


def _whole(seconds: float) -> int:
    return max(1, math.ceil(seconds))
