"""mana-analytics: src/services/feedback.ts `grantCredits` — POST /internal/credits/grant with only
`X-Service-Key` (no X-App-Id), body `{userId, amount, reason, referenceId, description}`; reads
`alreadyGranted` to decide whether to log the grant."""

from __future__ import annotations

import uuid

import asyncpg

from tests.support import SERVICE_KEY, Api


async def test_feedback_grant_once_per_reference(api: Api, db: asyncpg.Connection) -> None:
    user = api.actor()
    body = {"userId": user.id, "amount": 5, "reason": "feedback_submit", "referenceId": str(uuid.uuid4()),
            "description": "Danke für dein Feedback (bug)"}  # fmt: skip
    headers = {"Content-Type": "application/json", "X-Service-Key": SERVICE_KEY}
    first = await api.client.post("/api/v1/internal/credits/grant", json=body, headers=headers)
    assert first.status_code == 200 and first.json()["alreadyGranted"] is False
    again = await api.client.post("/api/v1/internal/credits/grant", json=body, headers=headers)
    assert again.status_code == 200 and again.json()["alreadyGranted"] is True
    assert (await api.balance(user))["balance"] == 5
    app = await db.fetchval("SELECT app_id FROM credits.transactions WHERE user_id = $1", user.id)
    assert app == "community"  # what the old service wrote for grants
