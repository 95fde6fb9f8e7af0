"""Messages for mana-notify and their delivery from the outbox.

A row is marked delivered in its claim transaction only after mana-notify answered 2xx. A crash between
the answer and the commit sends it again; mana-notify drops the repeat by its `externalId`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from mana_credits.db.pool import Conn
from mana_credits.kit.clock import Clock
from mana_credits.notifications import repository

log = logging.getLogger("mana_credits.notifications")

BATCH = 20
TIMEOUT = httpx.Timeout(5.0)
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=1)
# After this many tries that mana-notify *refused* (a 4xx: e.g. a pause email for an account whose email we
# never learned) a message is parked: kept, with its last error, no longer tried. An outage (unreachable,
# timeout, 5xx, 408, 429) is not the message's fault: it is retried, at most an hour apart, until it lands.
MAX_ATTEMPTS = 30
PARKED = datetime(9999, 12, 31, tzinfo=UTC)


def backoff(attempts: int) -> timedelta:
    """Wait before the next try after `attempts` failed ones: 30 s, 1 min, 2 min … at most 1 h."""
    # The exponent is capped before multiplying: an outage of days means hundreds of tries.
    delay: timedelta = BACKOFF_BASE * 2 ** min(max(attempts - 1, 0), 16)
    return min(delay, BACKOFF_MAX)


def sync_paused(
    *, user_id: str, email: str | None, amount: int, resume_url: str, external_id: str
) -> dict[str, Any]:
    """The "Cloud Sync pausiert" email, as the old service worded it."""
    return {
        "channel": "email",
        "appId": "sync",
        "userId": user_id,
        "recipient": email,
        "subject": "Cloud Sync pausiert",
        "body": (
            f"Dein Guthaben reicht nicht für die Verlängerung von Cloud Sync ({amount} Credits). "
            "Deine Daten bleiben erhalten, sie werden nur nicht mehr synchronisiert. "
            f"Lade Credits auf und aktiviere Cloud Sync wieder: {resume_url}"
        ),
        "data": {"type": "sync-paused", "resumeUrl": resume_url},
        "externalId": external_id,
    }


@dataclass
class DeliveryResult:
    delivered: int = 0
    failed: int = 0


@dataclass(frozen=True)
class Notifier:
    """Where and how to deliver: mana-notify's base URL and our service key."""

    pool: asyncpg.Pool
    http: httpx.AsyncClient
    clock: Clock
    notify_url: str
    service_key: str

    async def deliver_due(self, *, batch: int = BATCH) -> DeliveryResult:
        """Send every queued message that is due, batch by batch, until none is left this round."""
        # One `now` per round: a row that fails gets a later next attempt and is not claimed again.
        now = self.clock.now()
        result = DeliveryResult()
        while True:
            before = result.delivered + result.failed
            claimed = await self._deliver_batch(now, batch, result)
            # Stop when nothing was claimed, or when no outcome could be recorded (the same rows would be
            # claimed again at once: wait for the next round instead of spinning).
            if not claimed or result.delivered + result.failed == before:
                return result

    async def _deliver_batch(self, now: datetime, batch: int, result: DeliveryResult) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await repository.claim_due(conn, now, batch)
            for row in rows:
                # One savepoint a row: whatever goes wrong with one message cannot undo the marks of the
                # messages mana-notify already accepted in this batch (they would be sent again).
                try:
                    async with conn.transaction():
                        await self._deliver(conn, row, now, result)
                except Exception:
                    log.exception("notification %s: could not record the delivery outcome", row.external_id)
            return len(rows)

    async def _deliver(
        self, conn: Conn, row: repository.OutboxRow, now: datetime, result: DeliveryResult
    ) -> None:
        error, refused = await self._post(row.payload)
        if error is None:
            await repository.mark_delivered(conn, row.id, now)
            result.delivered += 1
            return
        tries = row.attempts + 1
        retry_at = PARKED if refused and tries >= MAX_ATTEMPTS else now + backoff(tries)
        log.log(
            logging.WARNING if retry_at is not PARKED else logging.ERROR,
            "notification %s not delivered (try %s%s): %s",
            row.external_id,
            tries,
            ", parked" if retry_at is PARKED else "",
            error,
        )
        await repository.mark_failed(conn, row.id, retry_at, error)
        result.failed += 1

    async def _post(self, payload: dict[str, Any]) -> tuple[str | None, bool]:
        """(None, False) when mana-notify accepted the message, else (why not, whether it refused it)."""
        url = f"{self.notify_url.rstrip('/')}/api/v1/notifications/send"
        try:
            response = await self.http.post(
                url, json=payload, headers={"X-Service-Key": self.service_key}, timeout=TIMEOUT
            )
        except Exception as exc:  # any failure to talk to mana-notify is a failed try, never a crash
            return f"{type(exc).__name__}: {exc}", False
        if response.is_success:
            return None, False
        refused = 400 <= response.status_code < 500 and response.status_code not in (408, 429)
        return f"HTTP {response.status_code}: {response.text[:200]}", refused
