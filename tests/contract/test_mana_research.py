"""mana-research: src/clients/mana-credits.ts as used by src/routes/internal-research.ts. It reserves when a
job is submitted (`{userId, amount, reason}`, no ttlSeconds, `X-App-Id: mana-research`), and commits
(`{reservationId, description}`) when a later poll — minutes, hours or a day later — sees the job done,
or releases on failure; it reads `reservationId`, `balance` and `success`. A failed commit is only logged
(`console.warn`): the research is then delivered free."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from mana_credits.context import AppContext
from mana_credits.credits import holds
from mana_credits.ledger.audit import audit
from tests.support import SERVICE_KEY, Api

HEADERS = {"Content-Type": "application/json", "X-Service-Key": SERVICE_KEY, "X-App-Id": "mana-research"}
BASE = "/api/v1/internal/credits"


async def test_jobs_are_charged_however_late_the_poll_comes(api: Api, ctx: AppContext) -> None:
    client, user = api.client, api.actor()
    await api.fund(user.id, 100)
    balance = await client.get(f"{BASE}/balance/{user.id}", headers=HEADERS)
    assert balance.json()["balance"] == 100

    jobs = {}
    for name in ("quick", "slow", "forgotten", "failed"):
        reserved = await client.post(
            f"{BASE}/reserve", json={"userId": user.id, "amount": 20, "reason": f"research:openai:{name}"},
            headers=HEADERS,
        )  # fmt: skip
        assert reserved.status_code == 200, reserved.text
        assert isinstance(reserved.json()["reservationId"], str) and isinstance(
            reserved.json()["balance"], int
        )
        jobs[name] = reserved.json()["reservationId"]
    assert reserved.json()["balance"] == 20

    async def commit(name: str) -> bool:
        response = await client.post(
            f"{BASE}/commit",
            json={"reservationId": jobs[name], "description": "research openai"},
            headers=HEADERS,
        )
        return response.is_success and response.json()["success"] is True

    assert await commit("quick")
    ctx.clock.advance(timedelta(hours=5))  # the user opens the result page hours later
    await holds.sweep_expired(ctx.pool, ctx.clock.now())
    assert await commit("slow")
    failed = await client.post(
        f"{BASE}/refund-reservation", json={"reservationId": jobs["failed"]}, headers=HEADERS
    )
    assert failed.is_success and failed.json()["success"] is True
    ctx.clock.advance(timedelta(days=2))  # days later: the sweep runs meanwhile
    await holds.sweep_expired(ctx.pool, ctx.clock.now())
    assert await commit("forgotten")  # still charged, once
    assert not await commit("forgotten")

    after = (await client.get(f"{BASE}/balance/{user.id}", headers=HEADERS)).json()
    assert (after["balance"], after["reserved"], after["totalSpent"]) == (40, 0, 60)


async def test_a_job_polled_two_days_later_is_paid_from_its_hold(
    api: Api, ctx: AppContext, db: asyncpg.Connection
) -> None:
    """routes/research.ts: POST /async reserves the price, GET /async/:id commits when the job is done; the
    user opens the result two days later and meanwhile spends what the balance shows in another app."""
    client, user = api.client, api.actor()
    await api.fund(user.id, 50)
    reserved = await client.post(
        f"{BASE}/reserve",
        json={"userId": user.id, "amount": 50, "reason": "research:openai-deep-research:submit"},
        headers=HEADERS,
    )
    assert reserved.status_code == 200, reserved.text
    lives = datetime.fromisoformat(reserved.json()["expiresAt"]) - ctx.clock.now()
    assert timedelta(days=6, hours=23) < lives <= timedelta(days=7)  # HOLD_TTL_DEFAULTS: mana-research:7d

    ctx.clock.advance(timedelta(days=2))
    await holds.sweep_expired(ctx.pool, ctx.clock.now())
    chat = await client.post(
        f"{BASE}/use",
        json={"userId": user.id, "amount": 50, "appId": "chat", "description": "chat"},
        headers={**HEADERS, "X-App-Id": "chat"},
    )
    assert chat.status_code == 402  # the research's credits are still held

    job = {"reservationId": reserved.json()["reservationId"], "description": "research openai-deep-research"}
    committed = await client.post(f"{BASE}/commit", json=job, headers=HEADERS)
    assert committed.status_code == 200, committed.text
    assert committed.json()["success"] is True
    after = (await client.get(f"{BASE}/balance/{user.id}", headers=HEADERS)).json()
    assert (after["balance"], after["reserved"], after["totalSpent"]) == (0, 0, 50)
    apps = await db.fetch("SELECT app_id, credits_used FROM credits.usage_stats WHERE user_id = $1", user.id)
    assert [(r["app_id"], r["credits_used"]) for r in apps] == [("mana-research", 50)]
    assert [o.problems for o in await audit(db)] == []


async def test_other_apps_holds_keep_a_day_and_ttl_seconds_still_wins(api: Api, ctx: AppContext) -> None:
    client, user = api.client, api.actor()
    await api.fund(user.id, 30)

    async def lives(app: str, **extra: int) -> timedelta:
        body = {"userId": user.id, "amount": 10, "reason": "research:x", **extra}
        answer = await client.post(f"{BASE}/reserve", json=body, headers={**HEADERS, "X-App-Id": app})
        assert answer.status_code == 200, answer.text
        return datetime.fromisoformat(answer.json()["expiresAt"]) - ctx.clock.now()

    assert timedelta(hours=23, minutes=59) < await lives("chat") <= timedelta(days=1)
    assert timedelta(seconds=50) < await lives("mana-research", ttlSeconds=60) <= timedelta(seconds=60)
    too_long = await client.post(
        f"{BASE}/reserve",
        json={"userId": user.id, "amount": 1, "reason": "r", "ttlSeconds": 7 * 86_400 + 1},
        headers=HEADERS,
    )
    assert too_long.status_code == 400
