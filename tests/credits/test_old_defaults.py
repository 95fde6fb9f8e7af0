"""Defaults the old service's callers rely on (what it wrote when a caller left something out)."""

from __future__ import annotations

import asyncpg

from tests.support import SERVICE_KEY, Api

SHARED_KEY_ONLY = {"X-Service-Key": SERVICE_KEY}  # no X-App-Id, as mana-auth and mana-analytics call


async def test_app_ids_without_x_app_id(api: Api, db: asyncpg.Connection) -> None:
    user = api.actor()
    base = "/api/v1/internal/credits"
    grant = {"userId": user.id, "amount": 50, "reason": "welcome", "referenceId": f"w-{user.id}"}
    assert (await api.client.post(f"{base}/grant", json=grant, headers=SHARED_KEY_ONLY)).status_code == 200
    refund = {"userId": user.id, "amount": 3, "description": "failed call"}
    assert (await api.client.post(f"{base}/refund", json=refund, headers=SHARED_KEY_ONLY)).status_code == 200
    use = {"userId": user.id, "amount": 4, "appId": "todo", "description": "AI"}
    assert (await api.client.post(f"{base}/use", json=use, headers=SHARED_KEY_ONLY)).status_code == 200
    hold = {"userId": user.id, "amount": 5, "reason": "research:exa:submit"}
    held = await api.client.post(f"{base}/reserve", json=hold, headers=SHARED_KEY_ONLY)
    done = await api.client.post(
        f"{base}/commit", json={"reservationId": held.json()["reservationId"]}, headers=SHARED_KEY_ONLY
    )
    assert done.status_code == 200
    rows = await db.fetch(
        "SELECT type::text, app_id FROM credits.transactions WHERE user_id = $1 ORDER BY created_at, id",
        user.id,
    )
    assert [(r["type"], r["app_id"]) for r in rows] == [
        ("grant", "community"),  # grantCredits
        ("refund", "system"),  # internalRefundSchema's default
        ("usage", "todo"),  # the body's appId
        ("usage", "research"),  # commitReservation: the reason's prefix
    ]


async def test_usage_day_is_the_calendar_day_in_berlin(api: Api, db: asyncpg.Connection) -> None:
    user = api.actor()
    await api.fund(user.id, 10)
    body = {"amount": 1, "appId": "chat", "description": "x"}
    assert (await api.client.post("/api/v1/credits/use", json=body, headers=user.headers)).status_code == 200
    row = await db.fetchrow(
        """
        SELECT date, date_trunc('day', now(), 'Europe/Berlin') AS berlin_midnight,
               (date AT TIME ZONE 'Europe/Berlin')::time AS local_time
        FROM credits.usage_stats WHERE user_id = $1
        """,
        user.id,
    )
    assert row is not None
    assert row["date"] == row["berlin_midnight"] and str(row["local_time"]) == "00:00:00"
