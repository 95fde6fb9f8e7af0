"""mana-research: src/clients/mana-credits.ts as used by src/routes/internal-research.ts. It reserves when a
job is submitted (`{userId, amount, reason}`, no ttlSeconds, `X-App-Id: mana-research`), and commits
(`{reservationId, description}`) when a later poll — minutes, hours or a day later — sees the job done,
or releases on failure; it reads `reservationId`, `balance` and `success`."""

from __future__ import annotations

from datetime import timedelta

from mana_credits.context import AppContext
from mana_credits.credits import holds
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
    ctx.clock.advance(timedelta(days=2))  # past the hold's day: the sweep gives the credits back meanwhile
    await holds.sweep_expired(ctx.pool, ctx.clock.now())
    assert await commit("forgotten")  # still charged, once
    assert not await commit("forgotten")

    after = (await client.get(f"{BASE}/balance/{user.id}", headers=HEADERS)).json()
    assert (after["balance"], after["reserved"], after["totalSpent"]) == (40, 0, 60)
