"""mana-auth: services/mana-auth/src/routes/auth.ts (registration: `init`, then `redeem-pending`,
fire-and-forget, only `X-Service-Key`) and src/services/user-data.ts (data export reads balance,
totalEarned, totalSpent, transactionsCount; account deletion reads `deletedCount`)."""

from __future__ import annotations

import uuid

from tests.support import SERVICE_KEY, Api

HEADERS = {"Content-Type": "application/json", "X-Service-Key": SERVICE_KEY}


async def test_registration_export_and_deletion(api: Api) -> None:
    client = api.client
    friend = api.actor()
    await api.fund(friend.id, 200)
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    gift = await client.post(
        "/api/v1/gifts", json={"totalCredits": 75, "type": "personalized", "targetEmail": email},
        headers=friend.headers,
    )  # fmt: skip
    assert gift.status_code == 201, gift.text

    # POST /register → init, then redeem-pending (body.email as typed at registration).
    user_id = f"u-{uuid.uuid4()}"
    init = await client.post("/api/v1/internal/credits/init", json={"userId": user_id}, headers=HEADERS)
    assert init.status_code == 200
    pending = await client.post(
        "/api/v1/internal/gifts/redeem-pending", json={"userId": user_id, "email": email}, headers=HEADERS
    )
    assert pending.status_code == 200 and pending.json()["redeemed"] == 1

    # getCreditsData: `res.ok`, then the four fields (missing ones would silently read as 0).
    export = await client.get(
        f"/api/v1/internal/credits/balance/{user_id}", headers={"X-Service-Key": SERVICE_KEY}
    )
    assert export.status_code == 200
    data = export.json()
    assert (data["balance"], data["totalEarned"], data["totalSpent"], data["transactionsCount"]) == (
        75,
        75,
        0,
        1,
    )

    # deleteUserData: DELETE, best effort; `deletedCount` is added to the report.
    deleted = await client.delete(
        f"/api/v1/internal/credits/balance/{user_id}", headers={"X-Service-Key": SERVICE_KEY}
    )
    assert deleted.status_code == 200
    assert isinstance(deleted.json()["deletedCount"], int) and deleted.json()["deletedCount"] > 0
