"""Outbox SQL: rows are written in the transaction of the event they announce and claimed with
`FOR UPDATE SKIP LOCKED`, so two delivery loops never send the same row at once."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from mana_credits.db.pool import Conn
from mana_credits.kit.records import from_record


class OutboxRow(msgspec.Struct, kw_only=True):
    id: UUID
    external_id: str
    payload: dict[str, Any]
    attempts: int


async def enqueue_many(conn: Conn, messages: list[tuple[str, dict[str, Any]]], now: datetime) -> None:
    """Queue (external id, payload) pairs; an external id already queued is kept as it was."""
    if not messages:
        return
    await conn.execute(
        """
        INSERT INTO credits.notification_outbox (external_id, payload, next_attempt_at, created_at)
        SELECT e, p::jsonb, $3, $3 FROM unnest($1::text[], $2::text[]) AS m(e, p)
        ON CONFLICT (external_id) DO NOTHING
        """,
        [external_id for external_id, _ in messages],
        [msgspec.json.encode(payload).decode() for _, payload in messages],
        now,
    )


async def claim_due(conn: Conn, now: datetime, limit: int) -> list[OutboxRow]:
    rows = await conn.fetch(
        """
        SELECT id, external_id, payload, attempts FROM credits.notification_outbox
        WHERE delivered_at IS NULL AND next_attempt_at <= $1
        ORDER BY next_attempt_at
        LIMIT $2
        FOR UPDATE SKIP LOCKED
        """,
        now,
        limit,
    )
    return [from_record(OutboxRow, row) for row in rows]


async def mark_delivered(conn: Conn, row_id: UUID, now: datetime) -> None:
    await conn.execute(
        "UPDATE credits.notification_outbox SET delivered_at = $2, attempts = attempts + 1, "
        "last_error = NULL WHERE id = $1",
        row_id,
        now,
    )


async def mark_failed(conn: Conn, row_id: UUID, next_attempt_at: datetime, error: str) -> None:
    await conn.execute(
        "UPDATE credits.notification_outbox SET attempts = attempts + 1, next_attempt_at = $2, "
        "last_error = $3 WHERE id = $1",
        row_id,
        next_attempt_at,
        # Text from the other side may hold what PostgreSQL cannot store (NUL).
        error.replace("\x00", "\ufffd")[:1000],
    )
