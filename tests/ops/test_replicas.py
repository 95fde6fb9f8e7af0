"""Two real service processes on one database: every background effect happens exactly once.

Both replicas run every job (renewals each second here, hold expiry, gift expiry, the email outbox) at
the same moments; the rows they claim in the database decide who does what.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from mana_credits import ledger
from mana_credits.credits import holds
from mana_credits.db.pool import connect
from mana_credits.ledger.audit import audit
from mana_credits.ledger.schemas import TxType
from tests.gifts.conftest import make_gift
from tests.notifications.notify_stub import NotifyStub
from tests.ops.test_image import free_port
from tests.support import SERVICE_KEY, JwksServer

CLI = str(Path(sys.executable).parent / "mana-credits")
RICH, POOR, HOLDS, GIFTS = 12, 4, 12, 12


async def _seed(conn: asyncpg.Connection) -> None:
    past = datetime.now(UTC) - timedelta(days=2)
    rich = [f"rich-{i}" for i in range(RICH)]
    poor = [f"poor-{i}" for i in range(POOR)]
    for user in rich:
        await ledger.credit(conn, user, 100, type=TxType.GRANT, app_id="t", description="fund")
    await conn.execute(
        """
        INSERT INTO credits.sync_subscriptions
          (user_id, active, billing_interval, amount_charged, activated_at, next_charge_at,
           current_period_end, anchor_day, email)
        SELECT u, true, 'monthly', 30, $2, $2, $2, 1, u || '@example.com' FROM unnest($1::text[]) u
        """,
        rich + poor,
        past,
    )
    for i in range(HOLDS):
        await ledger.credit(conn, f"holder-{i}", 50, type=TxType.GRANT, app_id="t", description="fund")
        async with conn.transaction():
            await holds.reserve(
                conn, user_id=f"holder-{i}", amount=20, reason="job", app_id="t", ttl_seconds=60, now=past
            )
    for i in range(GIFTS):
        await make_gift(conn, f"giver-{i}", 40, expired=True)


def _start_replica(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [CLI, "serve", "--workers", "1", "--host", "127.0.0.1"], env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def _all_done(conn: asyncpg.Connection, stub: NotifyStub) -> bool:
    charged = await conn.fetchval(
        "SELECT count(*) FROM credits.balances WHERE user_id LIKE 'rich-%' AND balance = 70"
    )
    open_holds = await conn.fetchval("SELECT count(*) FROM credits.reservations WHERE status = 'reserved'")
    refunded = await conn.fetchval(
        "SELECT count(*) FROM credits.balances WHERE user_id LIKE 'giver-%' AND balance = 40"
    )
    return charged == RICH and open_holds == 0 and refunded == GIFTS and len(stub.received) >= POOR


async def test_two_replicas_do_each_background_effect_once(
    fresh_database: Callable[[], Awaitable[str]], jwks: JwksServer
) -> None:
    url = await fresh_database()
    stub = NotifyStub()
    conn = await connect(url)
    folder = Path(tempfile.mkdtemp(prefix="mana-replicas-"))
    replicas: list[subprocess.Popen[bytes]] = []
    try:
        await _seed(conn)
        for i in range(2):
            env = {
                **os.environ, "DATABASE_URL": url, "MANA_SERVICE_KEY": SERVICE_KEY, "MANA_AUTH_URL": jwks.url,
                "MANA_NOTIFY_URL": stub.url, "PORT": str(free_port()), "SYNC_BILLING_INTERVAL_SECONDS": "1",
                "MANA_CREDITS_ENV": "production", "MANA_CREDITS_DATA_DIR": str(folder / f"replica-{i}"),
            }  # fmt: skip
            replicas.append(_start_replica(env))
        for _ in range(600):
            if await _all_done(conn, stub):
                break
            assert all(replica.poll() is None for replica in replicas)
            await asyncio.sleep(0.1)
        # More rounds of every job in both replicas (renewals run each second): still nothing twice.
        await asyncio.sleep(3)
        assert all(replica.poll() is None for replica in replicas)
    finally:
        for replica in replicas:
            if replica.poll() is None:
                os.killpg(replica.pid, signal.SIGTERM)
        for replica in replicas:
            replica.wait(timeout=60)
        stub.close()
    try:
        renewals = await conn.fetch(
            "SELECT user_id, count(*) AS n FROM credits.transactions "
            "WHERE user_id LIKE 'rich-%' AND amount < 0 GROUP BY user_id"
        )
        assert sorted(row["n"] for row in renewals) == [1] * RICH
        paused = await conn.fetchval(
            "SELECT count(*) FROM credits.sync_subscriptions WHERE user_id LIKE 'poor-%' AND NOT active"
        )
        assert paused == POOR
        held = await conn.fetch(
            "SELECT balance, reserved FROM credits.balances WHERE user_id LIKE 'holder-%'"
        )
        assert [(row["balance"], row["reserved"]) for row in held] == [(50, 0)] * HOLDS
        refunds = await conn.fetch(
            "SELECT user_id, count(*) AS n FROM credits.transactions "
            "WHERE user_id LIKE 'giver-%' AND amount > 0 AND type = 'expiry' GROUP BY user_id"
        )
        assert sorted(row["n"] for row in refunds) == [1] * GIFTS
        sent = Counter(item.body.get("externalId") for item in stub.received)
        assert len(sent) == POOR and set(sent.values()) == {1}, sent
        assert await audit(conn) == []
    finally:
        await conn.close()
