"""Renewals: exactly one charge per period, on the anchor day, whatever runs them and how often."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg

from mana_credits import ledger
from mana_credits.db.pool import create_pool
from mana_credits.kit.clock import Clock
from mana_credits.ledger.audit import audit
from mana_credits.ledger.schemas import TxType
from mana_credits.sync_billing import service
from mana_credits.sync_billing.schemas import RenewalResult
from tests.support import Api
from tests.sync_billing.helpers import activate, near, run_renewals, status

RESUME = "https://mana.test/settings/sync"


async def test_a_year_of_monthly_renewals_charges_twelve_times_on_the_anchor_day(
    api: Api, clock: Clock, db: asyncpg.Connection
) -> None:
    user = api.actor()
    await api.fund(user.id, 1000)
    clock.set(datetime(2024, 1, 31, 10, tzinfo=UTC))
    assert (await activate(api, user)).status_code == 200
    while True:
        due = datetime.fromisoformat((await status(api, user))["nextChargeAt"].replace("Z", "+00:00"))
        if due >= datetime(2025, 1, 31, tzinfo=UTC):
            break
        clock.set(due + timedelta(hours=1))
        await run_renewals(api)
        await run_renewals(api)  # an overlapping or repeated run charges nothing more
    rows = await db.fetch(
        "SELECT amount, metadata FROM credits.transactions WHERE user_id = $1 AND app_id = 'sync' "
        "ORDER BY metadata->>'periodStart'",
        user.id,
    )
    starts = [datetime.fromisoformat(row["metadata"]["periodStart"]).date().isoformat() for row in rows]
    assert starts == [
        "2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31", "2024-06-30",
        "2024-07-31", "2024-08-31", "2024-09-30", "2024-10-31", "2024-11-30", "2024-12-31",
    ]  # fmt: skip
    assert [row["amount"] for row in rows] == [-30] * 12
    assert (await api.balance(user))["balance"] == 1000 - 12 * 30
    assert near((await status(api, user))["nextChargeAt"], "2025-01-31T10:00:00+00:00")
    assert await audit(db) == []


async def test_a_service_down_for_several_periods_charges_once_and_reanchors(
    api: Api, clock: Clock, db: asyncpg.Connection
) -> None:
    user = api.actor()
    await api.fund(user.id, 300)
    clock.set(datetime(2024, 1, 15, 9, tzinfo=UTC))
    assert (await activate(api, user)).status_code == 200
    clock.set(datetime(2024, 5, 20, 7, tzinfo=UTC))
    await run_renewals(api)
    await run_renewals(api)
    charges = await db.fetchval(
        "SELECT count(*) FROM credits.transactions WHERE user_id = $1 AND app_id = 'sync'", user.id
    )
    assert charges == 2
    assert (await api.balance(user))["balance"] == 240
    assert near((await status(api, user))["nextChargeAt"], "2024-06-20T07:00:00+00:00")


async def _seed(url: str, users: int, *, broke_every: int | None = None) -> tuple[list[str], datetime]:
    """`users` due monthly subscriptions; every `broke_every`-th user (from the first) has too few credits."""
    due = datetime(2025, 3, 31, 6, tzinfo=UTC)
    ids = [f"renew-{index:05d}" for index in range(users)]
    pool = await create_pool(url, size=1)
    try:
        async with pool.acquire() as conn, conn.transaction():
            for index, user_id in enumerate(ids):
                amount = 10 if broke_every and index % broke_every == 0 else 100
                await ledger.credit(
                    conn, user_id, amount, type=TxType.GRANT, app_id="tests", description="seed"
                )
            await conn.execute(
                """
                INSERT INTO credits.sync_subscriptions
                  (user_id, active, billing_interval, amount_charged, activated_at, next_charge_at,
                   current_period_end, anchor_day, email)
                SELECT u, true, 'monthly', 30, $2, $2, $2, 31, u || '@example.com' FROM unnest($1::text[]) u
                """,
                ids,
                due,
            )
    finally:
        await pool.close()
    return ids, due


async def test_three_concurrent_runs_charge_each_subscription_exactly_once(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    url = await fresh_database()
    ids, due = await _seed(url, 1000, broke_every=10)
    now = due + timedelta(minutes=5)
    pools = [await create_pool(url, size=2) for _ in range(3)]
    try:
        # Three runners, each on its own pool, started at the same moment; small batches interleave them.
        results = await asyncio.gather(
            *(service.charge_recurring(pool, now, resume=RESUME, batch=40) for pool in pools)
        )
        total = RenewalResult()
        for result in results:
            total.add(result)
        assert (total.charged, total.paused, total.errors, total.total) == (900, 100, 0, 1000)
        again = await service.charge_recurring(pools[0], now, resume=RESUME)
        assert again.total == 0

        async with pools[0].acquire() as conn:
            rows = await conn.fetch(
                "SELECT user_id, count(*) FROM credits.transactions WHERE app_id = 'sync' GROUP BY user_id"
            )
            per_user = {row["user_id"]: row["count"] for row in rows}
            funded = [user_id for index, user_id in enumerate(ids) if index % 10]
            assert per_user == dict.fromkeys(funded, 1)
            usage = await conn.fetchval(
                "SELECT sum(credits_used) FROM credits.usage_stats WHERE app_id = 'sync'"
            )
            assert usage == 900 * 30
            renewed = await conn.fetch(
                "SELECT next_charge_at, active FROM credits.sync_subscriptions "
                "WHERE user_id = ANY($1::text[])",
                funded,
            )
            assert {(row["next_charge_at"], row["active"]) for row in renewed} == {
                (datetime(2025, 4, 30, 6, tzinfo=UTC), True)
            }
            paused = await conn.fetchval(
                "SELECT count(*) FROM credits.sync_subscriptions WHERE NOT active AND paused_at = $1", now
            )
            assert paused == 100
            assert await conn.fetchval("SELECT count(*) FROM credits.notification_outbox") == 100
            keys = await conn.fetchval(
                "SELECT count(*) FROM credits.idempotency_keys WHERE scope = 'sync-renewal'"
            )
            assert keys == 900
            assert await audit(conn) == []
    finally:
        for pool in pools:
            await pool.close()


async def test_insufficient_credits_at_renewal_pauses_and_queues_one_email(
    api: Api, clock: Clock, db: asyncpg.Connection
) -> None:
    user = api.actor()
    await api.fund(user.id, 40)
    clock.set(datetime(2025, 6, 1, 12, tzinfo=UTC))
    assert (await activate(api, user)).status_code == 200
    clock.set(datetime(2025, 7, 1, 12, 5, tzinfo=UTC))
    result = await run_renewals(api)
    assert result["paused"] >= 1
    await run_renewals(api)
    body = await status(api, user)
    assert (body["active"], body["nextChargeAt"]) == (False, None)
    assert near(body["pausedAt"], "2025-07-01T12:05:00+00:00")
    assert (await api.balance(user))["balance"] == 10
    rows = await db.fetch(
        "SELECT external_id, payload FROM credits.notification_outbox WHERE payload->>'userId' = $1", user.id
    )
    assert len(rows) == 1
    payload = rows[0]["payload"]
    assert rows[0]["external_id"] == payload["externalId"]
    assert (payload["recipient"], payload["subject"], payload["data"]["type"]) == (
        user.email, "Cloud Sync pausiert", "sync-paused",
    )  # fmt: skip

    # Topped up, the user starts a new full period from now.
    await api.fund(user.id, 100)
    clock.set(datetime(2025, 7, 3, 8, tzinfo=UTC))
    response = await activate(api, user)
    assert response.status_code == 200
    assert response.json()["amountCharged"] == 30
    assert near(response.json()["nextChargeAt"], "2025-08-03T08:00:00+00:00")
    body = await status(api, user)
    assert (body["active"], body["pausedAt"]) == (True, None)
    assert await audit(db) == []


async def test_a_failing_subscription_is_retried_with_backoff_and_spares_the_rest(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    url = await fresh_database()
    ids, due = await _seed(url, 30)
    poison = ids[7]
    pool = await create_pool(url, size=2)
    try:
        async with pool.acquire() as conn:
            # A real database failure for one user's ledger row (not a money problem).
            await conn.execute(
                f"""
                CREATE FUNCTION credits.reject_poison() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                  IF NEW.user_id = '{poison}' AND NEW.app_id = 'sync' THEN
                    RAISE EXCEPTION 'storage failure';
                  END IF;
                  RETURN NEW;
                END $$;
                CREATE TRIGGER reject_poison BEFORE INSERT ON credits.transactions
                  FOR EACH ROW EXECUTE FUNCTION credits.reject_poison();
                """
            )
        now = due + timedelta(minutes=1)
        first = await service.charge_recurring(pool, now, resume=RESUME)
        assert (first.charged, first.errors, first.total) == (29, 1, 30)
        # Not retried on every run: the next try waits for its backoff.
        assert (await service.charge_recurring(pool, now + timedelta(minutes=4), resume=RESUME)).total == 0
        later = now + timedelta(minutes=6)
        second = await service.charge_recurring(pool, later, resume=RESUME)
        assert (second.charged, second.errors) == (0, 1)
        async with pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT active, failure_count, retry_at, next_charge_at FROM credits.sync_subscriptions "
                "WHERE user_id = $1",
                poison,
            )
            assert row is not None
            assert (row["active"], row["failure_count"], row["next_charge_at"]) == (True, 2, due)
            assert row["retry_at"] == later + timedelta(minutes=10)
            await conn.execute("DROP TRIGGER reject_poison ON credits.transactions")
        healed = await service.charge_recurring(pool, later + timedelta(minutes=11), resume=RESUME)
        assert (healed.charged, healed.errors) == (1, 0)
        async with pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT failure_count, retry_at FROM credits.sync_subscriptions WHERE user_id = $1", poison
            )
            assert row is not None and (row["failure_count"], row["retry_at"]) == (0, None)
            assert await audit(conn) == []
    finally:
        await pool.close()
