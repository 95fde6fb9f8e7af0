"""SQL of the kit: the idempotency key table (credits.idempotency_keys), the sampled money gauges and how
current a standby is."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from mana_credits.db.pool import Conn, rows_changed
from mana_credits.kit.records import from_record


async def insert_key(conn: Conn, scope: str, key: str, request_hash: str) -> bool:
    """True when the key is new (ours now); waits for a concurrent holder of the same key to finish."""
    inserted = await conn.fetchval(
        """
        INSERT INTO credits.idempotency_keys (scope, key, request_hash)
        VALUES ($1, $2, $3) ON CONFLICT (scope, key) DO NOTHING RETURNING true
        """,
        scope,
        key,
        request_hash,
    )
    return bool(inserted)


class StoredKey(msgspec.Struct, frozen=True, kw_only=True):
    request_hash: str
    # Written in the transaction that inserted the key, so a committed key has them.
    response_status: int
    response_body: Any


async def stored_key(conn: Conn, scope: str, key: str) -> StoredKey | None:
    row = await conn.fetchrow(
        "SELECT request_hash, response_status, response_body FROM credits.idempotency_keys "
        "WHERE scope = $1 AND key = $2",
        scope,
        key,
    )
    return from_record(StoredKey, row) if row else None


async def store_response(
    conn: Conn, scope: str, key: str, status: int, body: Any, user_id: str | None = None
) -> None:
    """`user_id`: whom the answer is about (account deletion rewrites it)."""
    await conn.execute(
        "UPDATE credits.idempotency_keys SET response_status = $3, response_body = $4, user_id = $5 "
        "WHERE scope = $1 AND key = $2",
        scope,
        key,
        status,
        body,
        user_id,
    )


async def delete_request_keys(conn: Conn, older_than: datetime, batch: int) -> int:
    """Delete up to `batch` request keys created before `older_than` (grant references stay); how many."""
    status = await conn.execute(
        """
        DELETE FROM credits.idempotency_keys WHERE ctid = ANY(ARRAY(
          SELECT ctid FROM credits.idempotency_keys
          WHERE created_at < $1 AND scope NOT LIKE 'grant:%' LIMIT $2))
        """,
        older_than,
        batch,
    )
    return rows_changed(status)


_MONEY_GAUGES = """
SELECT (SELECT count(*) FROM credits.reservations WHERE status = 'reserved') AS holds_open,
       (SELECT count(*) FROM credits.notification_outbox WHERE delivered_at IS NULL) AS backlog,
       (SELECT min(created_at) FROM credits.notification_outbox WHERE delivered_at IS NULL) AS oldest
"""


class MoneyGauges(msgspec.Struct, frozen=True, kw_only=True):
    holds_open: int
    backlog: int  # undelivered outbox messages
    oldest: datetime | None  # when the oldest of them was queued


async def money_gauges(conn: Conn) -> MoneyGauges:
    row = await conn.fetchrow(_MONEY_GAUGES)
    assert row is not None  # aggregates without GROUP BY: always one row
    return from_record(MoneyGauges, row)


# A primary (a standby promoted meanwhile) is current; a standby is current enough when it has applied all
# the WAL it received and its last news from the primary (a message or a replayed commit) is recent.
_CURRENT = """
SELECT NOT pg_is_in_recovery() OR coalesce(
    pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn()
    AND now() - greatest(
        pg_last_xact_replay_timestamp(), (SELECT max(last_msg_receipt_time) FROM pg_stat_wal_receiver)
    ) <= make_interval(secs => $1),
    false)
"""


async def standby_current(conn: Conn, staleness: float) -> bool:
    """Whether this connection's server may answer reads at most `staleness` seconds old (kit.standby)."""
    return bool(await conn.fetchval(_CURRENT, staleness))
