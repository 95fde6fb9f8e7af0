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
# After this many failed tries (about a day) a message is parked: kept, with its last error, but no
# longer tried (e.g. a pause email for an account whose email we never learned).
MAX_ATTEMPTS = 30
PARKED = datetime(9999, 12, 31, tzinfo=UTC)


def backoff(attempts: int) -> timedelta:
    """Wait before the next try after `attempts` failed ones: 30 s, 1 min, 2 min … at most 1 h."""
    delay: timedelta = BACKOFF_BASE * 2 ** max(attempts - 1, 0)
    return min(delay, BACKOFF_MAX)


def sync_paused(
    *, user_id: str, email: str | None, amount: int, resume_url: str, external_id: str
) -> dict[str, Any]:
    """The "Cloud Sync pausiert" email (SPEC §5 Notifications)."""
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
        while await self._deliver_batch(now, batch, result):
            pass
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
        error = await self._post(row.payload)
        if error is None:
            await repository.mark_delivered(conn, row.id, now)
            result.delivered += 1
            return
        tries = row.attempts + 1
        retry_at = now + backoff(tries) if tries < MAX_ATTEMPTS else PARKED
        log.log(
            logging.WARNING if retry_at is not PARKED else logging.ERROR,
            "notification %s not delivered (try %s%s): %s",
            row.external_id, tries, ", parked" if retry_at is PARKED else "", error,
        )  # fmt: skip
        await repository.mark_failed(conn, row.id, retry_at, error)
        result.failed += 1

    async def _post(self, payload: dict[str, Any]) -> str | None:
        """None when mana-notify accepted the message, else why not."""
        url = f"{self.notify_url.rstrip('/')}/api/v1/notifications/send"
        try:
            response = await self.http.post(
                url, json=payload, headers={"X-Service-Key": self.service_key}, timeout=TIMEOUT
            )
        except Exception as exc:  # any failure to talk to mana-notify is a failed try, never a crash
            return f"{type(exc).__name__}: {exc}"
        if response.is_success:
            return None
        return f"HTTP {response.status_code}: {response.text[:200]}"
