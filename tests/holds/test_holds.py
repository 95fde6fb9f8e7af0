"""Reserve → commit / release / expiry over real HTTP, with the ledger checked afterwards."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx

from mana_credits.context import AppContext
from mana_credits.credits import holds, tasks
from mana_credits.ledger.audit import audit
from tests.support import APP_KEYS, Api, service_headers

BASE = "/api/v1/internal/credits"


async def _reserve(client: httpx.AsyncClient, user_id: str, amount: int, **extra: Any) -> httpx.Response:
    body = {"userId": user_id, "amount": amount, "reason": "chat completion", **extra}
    return await client.post(f"{BASE}/reserve", json=body, headers=service_headers("chat"))


async def _commit(client: httpx.AsyncClient, reservation_id: str, **extra: Any) -> httpx.Response:
    body = {"reservationId": reservation_id, **extra}
    return await client.post(f"{BASE}/commit", json=body, headers=service_headers("chat"))


async def _release(client: httpx.AsyncClient, reservation_id: str) -> httpx.Response:
    body = {"reservationId": reservation_id}
    return await client.post(f"{BASE}/refund-reservation", json=body, headers=service_headers("chat"))


async def _balance(client: httpx.AsyncClient, user_id: str) -> dict[str, int]:
    """The internal balance's money fields (its `transactionsCount` is tested with the balance route)."""
    response = await client.get(f"{BASE}/balance/{user_id}", headers=service_headers())
    assert response.status_code == 200
    return {k: v for k, v in response.json().items() if k != "transactionsCount"}


async def _audit_clean(db: asyncpg.Connection) -> None:
    assert [o.problems for o in await audit(db)] == []


async def test_reserve_then_commit_part(client: httpx.AsyncClient, api: Api, db: asyncpg.Connection) -> None:
    user = api.actor()
    await api.fund(user.id, 100)

    reserved = await _reserve(client, user.id, 10)
    assert reserved.status_code == 200, reserved.text
    assert reserved.json()["balance"] == 90
    assert await _balance(client, user.id) == {
        "balance": 90,
        "totalEarned": 100,
        "totalSpent": 0,
        "reserved": 10,
    }

    committed = await _commit(client, reserved.json()["reservationId"], amount=7)
    assert committed.status_code == 200, committed.text
    assert committed.json()["success"] is True
    assert await _balance(client, user.id) == {
        "balance": 93,
        "totalEarned": 100,
        "totalSpent": 7,
        "reserved": 0,
    }

    rows = await db.fetch(
        "SELECT id, amount, balance_before, balance_after, app_id FROM credits.transactions "
        "WHERE user_id = $1 AND type = 'usage'",
        user.id,
    )
    assert [(r["amount"], r["balance_before"], r["balance_after"], r["app_id"]) for r in rows] == [
        (-7, 100, 93, "chat")
    ]
    assert str(rows[0]["id"]) == committed.json()["transactionId"]
    usage = await db.fetch("SELECT credits_used FROM credits.usage_stats WHERE user_id = $1", user.id)
    assert [r["credits_used"] for r in usage] == [7]
    await _audit_clean(db)


async def test_commit_defaults_to_full_amount_and_only_once(
    client: httpx.AsyncClient, api: Api, db: asyncpg.Connection
) -> None:
    user = api.actor()
    await api.fund(user.id, 20)
    reservation_id = (await _reserve(client, user.id, 15)).json()["reservationId"]
    assert (await _commit(client, reservation_id, description="GPT-4 answer")).status_code == 200
    again = await _commit(client, reservation_id)
    assert again.status_code == 409
    assert again.json()["code"] == "reservation_resolved"
    assert (await _release(client, reservation_id)).status_code == 409
    assert (await _balance(client, user.id))["balance"] == 5
    description = await db.fetchval(
        "SELECT description FROM credits.transactions WHERE user_id = $1 AND type = 'usage'", user.id
    )
    assert description == "GPT-4 answer"
    await _audit_clean(db)


async def test_commit_zero_releases_everything(
    client: httpx.AsyncClient, api: Api, db: asyncpg.Connection
) -> None:
    user = api.actor()
    await api.fund(user.id, 20)
    reservation_id = (await _reserve(client, user.id, 15)).json()["reservationId"]
    committed = await _commit(client, reservation_id, amount=0)
    assert committed.json() == {"success": True, "transactionId": None}
    assert await _balance(client, user.id) == {
        "balance": 20,
        "totalEarned": 20,
        "totalSpent": 0,
        "reserved": 0,
    }
    status = await db.fetchval(
        "SELECT status FROM credits.reservations WHERE id = $1", uuid.UUID(reservation_id)
    )
    assert status == "refunded"
    await _audit_clean(db)


async def test_release_gives_everything_back(
    client: httpx.AsyncClient, api: Api, db: asyncpg.Connection
) -> None:
    user = api.actor()
    await api.fund(user.id, 50)
    reservation_id = (await _reserve(client, user.id, 30)).json()["reservationId"]
    released = await _release(client, reservation_id)
    assert released.json() == {"success": True, "balance": 50}
    assert (await _balance(client, user.id))["reserved"] == 0
    assert (await _commit(client, reservation_id)).status_code == 409
    assert await db.fetchval("SELECT count(*) FROM credits.transactions WHERE user_id = $1", user.id) == 1
    await _audit_clean(db)


async def test_reserve_more_than_balance_is_402(client: httpx.AsyncClient, api: Api) -> None:
    user = api.actor()
    await api.fund(user.id, 5)
    response = await _reserve(client, user.id, 6)
    assert response.status_code == 402
    assert response.json()["details"] == {"required": 6, "available": 5}
    assert await _balance(client, user.id) == {"balance": 5, "totalEarned": 5, "totalSpent": 0, "reserved": 0}


async def test_bad_input(client: httpx.AsyncClient, api: Api) -> None:
    user = api.actor()
    await api.fund(user.id, 50)
    for extra in ({"amount": 1.5}, {"amount": 0}, {"ttlSeconds": 7 * 86_400 + 1}, {"ttlSeconds": 0}):
        body = {"userId": user.id, "amount": 5, "reason": "x", **extra}
        response = await client.post(f"{BASE}/reserve", json=body, headers=service_headers())
        assert response.status_code == 400, (extra, response.text)
        assert response.json()["code"] == "validation_error"
    assert (await _commit(client, "not-a-uuid")).status_code == 400
    assert (await _release(client, "not-a-uuid")).status_code == 400
    assert (await _commit(client, str(uuid.uuid4()))).status_code == 404
    assert (await _release(client, str(uuid.uuid4()))).status_code == 404

    reservation_id = (await _reserve(client, user.id, 10)).json()["reservationId"]
    too_much = await _commit(client, reservation_id, amount=11)
    assert too_much.status_code == 409
    assert too_much.json()["details"] == {"reserved": 10, "requested": 11}
    assert (await _commit(client, reservation_id, amount=-1)).status_code == 400
    # Still open after the refused attempts.
    assert (await _balance(client, user.id))["reserved"] == 10
    assert (await _commit(client, reservation_id, amount=10)).status_code == 200


async def test_unauthenticated_is_401(client: httpx.AsyncClient, api: Api) -> None:
    body = {"userId": api.actor().id, "amount": 5, "reason": "x"}
    response = await client.post(f"{BASE}/reserve", json=body, headers=service_headers(key="wrong"))
    assert response.status_code == 401


async def test_per_app_key_resolves_only_own_reservations(client: httpx.AsyncClient, api: Api) -> None:
    user = api.actor()
    await api.fund(user.id, 50)
    headers = {"X-Service-Key": APP_KEYS["chat"]}
    body = {"userId": user.id, "amount": 10, "reason": "x"}
    reservation_id = (await client.post(f"{BASE}/reserve", json=body, headers=headers)).json()[
        "reservationId"
    ]
    other = {"X-Service-Key": APP_KEYS["picture"]}
    stolen = await client.post(f"{BASE}/commit", json={"reservationId": reservation_id}, headers=other)
    assert stolen.status_code == 404
    own = await client.post(f"{BASE}/commit", json={"reservationId": reservation_id}, headers=headers)
    assert own.status_code == 200


async def test_commit_racing_release_has_one_winner(
    client: httpx.AsyncClient, api: Api, db: asyncpg.Connection
) -> None:
    user = api.actor()
    await api.fund(user.id, 50 * 10)
    ids = [(await _reserve(client, user.id, 10)).json()["reservationId"] for _ in range(50)]

    async def race(reservation_id: str) -> list[int]:
        commit, release = await asyncio.gather(
            _commit(client, reservation_id, amount=4), _release(client, reservation_id)
        )
        return sorted([commit.status_code, release.status_code])

    outcomes = await asyncio.gather(*(race(i) for i in ids))
    assert all(outcome == [200, 409] for outcome in outcomes), outcomes
    committed = await db.fetchval(
        "SELECT count(*) FROM credits.reservations WHERE user_id = $1 AND status = 'committed'", user.id
    )
    after = await _balance(client, user.id)
    assert after["reserved"] == 0
    assert after["balance"] == 500 - 4 * committed
    assert (
        await db.fetchval(
            "SELECT count(*) FROM credits.transactions WHERE user_id = $1 AND type = 'usage'", user.id
        )
        == committed
    )
    await _audit_clean(db)


async def test_idempotent_reserve_and_commit(
    client: httpx.AsyncClient, api: Api, db: asyncpg.Connection
) -> None:
    user = api.actor()
    await api.fund(user.id, 50)
    body = {"userId": user.id, "amount": 10, "reason": "x"}
    headers = {**service_headers("chat"), "Idempotency-Key": f"r-{uuid.uuid4()}"}
    first, second = await asyncio.gather(
        client.post(f"{BASE}/reserve", json=body, headers=headers),
        client.post(f"{BASE}/reserve", json=body, headers=headers),
    )
    assert first.status_code == second.status_code == 200
    assert first.json()["reservationId"] == second.json()["reservationId"]
    assert (await _balance(client, user.id))["reserved"] == 10
    reused = await client.post(f"{BASE}/reserve", json={**body, "amount": 11}, headers=headers)
    assert reused.status_code == 409
    assert reused.json()["code"] == "idempotency_key_reused"

    commit_headers = {**service_headers("chat"), "Idempotency-Key": f"c-{uuid.uuid4()}"}
    commit_body = {"reservationId": first.json()["reservationId"], "amount": 3}
    one = await client.post(f"{BASE}/commit", json=commit_body, headers=commit_headers)
    two = await client.post(f"{BASE}/commit", json=commit_body, headers=commit_headers)
    assert one.status_code == two.status_code == 200
    assert two.headers["Idempotent-Replayed"] == "true"
    assert one.json() == two.json()
    assert await _balance(client, user.id) == {
        "balance": 47,
        "totalEarned": 50,
        "totalSpent": 3,
        "reserved": 0,
    }
    await _audit_clean(db)


async def test_expired_holds_are_released_once(
    client: httpx.AsyncClient, api: Api, ctx: AppContext, db: asyncpg.Connection
) -> None:
    sweep = next(job for job in tasks.jobs(ctx) if job.name == "holds.expiry").run
    user = api.actor()
    await api.fund(user.id, 100)
    short = (await _reserve(client, user.id, 10, ttlSeconds=60)).json()["reservationId"]
    long = (await _reserve(client, user.id, 20, ttlSeconds=3600)).json()["reservationId"]
    unswept = (await _reserve(client, user.id, 5, ttlSeconds=60)).json()["reservationId"]
    # Other tests' holds may also expire here; count only ours.
    await sweep()
    assert (await _balance(client, user.id))["reserved"] == 35

    ctx.clock.advance(timedelta(seconds=61))
    # Expired, but the sweep has not released it yet: the credits are still held, the commit takes them.
    assert (await _commit(client, unswept)).status_code == 200
    # Two sweepers at once (as two replicas would): the hold is released once.
    await asyncio.gather(sweep(), sweep())
    assert await _balance(client, user.id) == {
        "balance": 75,
        "totalEarned": 100,
        "totalSpent": 5,
        "reserved": 20,
    }
    rows = await db.fetch(
        "SELECT id::text, status::text FROM credits.reservations WHERE user_id = $1", user.id
    )
    statuses = {row["id"]: row["status"] for row in rows}
    assert statuses == {short: "refunded", long: "reserved", unswept: "committed"}
    await sweep()
    assert (await _balance(client, user.id))["balance"] == 75
    assert (await _commit(client, long, amount=5)).status_code == 200
    await _audit_clean(db)


async def test_a_commit_after_the_sweep_released_the_hold_still_charges_once(
    client: httpx.AsyncClient, api: Api, ctx: AppContext, db: asyncpg.Connection
) -> None:
    """mana-research commits when a later poll sees the job done: a released hold must not make it free."""
    user = api.actor()
    await api.fund(user.id, 30)
    late = (await _reserve(client, user.id, 25, ttlSeconds=60)).json()["reservationId"]
    ctx.clock.advance(timedelta(seconds=61))
    await holds.sweep_expired(ctx.pool, ctx.clock.now())
    assert (await _balance(client, user.id))["balance"] == 30
    # The user spent meanwhile: the late commit is a normal debit with its own 402, and nothing moves.
    await client.post(
        f"{BASE}/use",
        json={"userId": user.id, "amount": 10, "appId": "chat", "description": "chat"},
        headers=service_headers("chat"),
    )
    short = await _commit(client, late, amount=25)
    assert short.status_code == 402, short.text
    assert short.json()["details"] == {"required": 25, "available": 20}
    await api.fund(user.id, 10)
    # Ten retries of the late commit at once: exactly one charges.
    answers = await asyncio.gather(*(_commit(client, late, amount=25) for _ in range(10)))
    assert sorted(a.status_code for a in answers) == [200] + [409] * 9
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"reservation_resolved"}
    assert await _balance(client, user.id) == {
        "balance": 5,
        "totalEarned": 40,
        "totalSpent": 35,
        "reserved": 0,
    }
    rows = await db.fetch(
        "SELECT amount, metadata->>'lateCommit' AS late FROM credits.transactions "
        "WHERE user_id = $1 AND metadata->>'reservationId' = $2",
        user.id,
        late,
    )
    assert [(row["amount"], row["late"]) for row in rows] == [(-25, "true")]
    await _audit_clean(db)


async def test_a_hold_released_by_its_caller_cannot_be_committed(
    client: httpx.AsyncClient, api: Api, ctx: AppContext, db: asyncpg.Connection
) -> None:
    user = api.actor()
    await api.fund(user.id, 30)
    hold = (await _reserve(client, user.id, 10, ttlSeconds=60)).json()["reservationId"]
    ctx.clock.advance(timedelta(seconds=61))
    assert (await _release(client, hold)).status_code == 200
    await holds.sweep_expired(ctx.pool, ctx.clock.now())
    answer = await _commit(client, hold)
    assert answer.status_code == 409 and answer.json()["code"] == "reservation_resolved"
    assert (await _balance(client, user.id))["balance"] == 30
    await _audit_clean(db)


async def test_holds_without_ttl_last_a_day(client: httpx.AsyncClient, api: Api) -> None:
    user = api.actor()
    await api.fund(user.id, 10)
    held = await _reserve(client, user.id, 10)
    assert held.status_code == 200
    rows = await client.get(f"{BASE}/balance/{user.id}", headers=service_headers("chat"))
    assert rows.json()["reserved"] == 10
    expires = datetime.fromisoformat(held.json()["expiresAt"])
    created = datetime.now(expires.tzinfo)
    assert timedelta(hours=23, minutes=59) < expires - created <= timedelta(hours=24, minutes=1)


async def test_sweep_works_through_batches(
    client: httpx.AsyncClient, api: Api, ctx: AppContext, db: asyncpg.Connection
) -> None:
    user = api.actor()
    await api.fund(user.id, 70)
    for _ in range(7):
        assert (await _reserve(client, user.id, 10, ttlSeconds=1)).status_code == 200
    assert (await _balance(client, user.id))["balance"] == 0
    ctx.clock.advance(timedelta(seconds=2))
    assert await holds.sweep_expired(ctx.pool, ctx.clock.now(), batch=3) >= 7
    assert await _balance(client, user.id) == {
        "balance": 70,
        "totalEarned": 70,
        "totalSpent": 0,
        "reserved": 0,
    }
    await _audit_clean(db)
