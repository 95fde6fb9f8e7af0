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


async def test_the_export_never_shows_negative_spending(api: Api) -> None:
    """user-data.ts shows `−{totalSpent}` as "spent": a refund beyond what the totals say was spent (of a
    charge from before the switch, or a goodwill refund) must not read as a negative spend."""
    client, user = api.client, api.actor()
    await api.fund(user.id, 100)
    service = {**HEADERS, "X-App-Id": "chat"}
    used = await client.post(
        "/api/v1/internal/credits/use",
        json={"userId": user.id, "amount": 5, "appId": "chat", "description": "chat"},
        headers=service,
    )
    assert used.status_code == 200 and used.json()["newBalance"]["totalSpent"] == 5
    refund = await client.post(
        "/api/v1/internal/credits/refund",
        json={"userId": user.id, "amount": 20, "description": "refund of last month's failed jobs"},
        headers=service,
    )
    assert refund.status_code == 200, refund.text
    export = await client.get(
        f"/api/v1/internal/credits/balance/{user.id}", headers={"X-Service-Key": SERVICE_KEY}
    )
    data = export.json()
    assert (data["balance"], data["totalEarned"], data["totalSpent"]) == (115, 115, 0)
    again = await client.post(
        "/api/v1/internal/credits/use",
        json={"userId": user.id, "amount": 3, "appId": "chat", "description": "chat"},
        headers=service,
    )
    assert again.json()["newBalance"]["totalSpent"] == 0  # net of the refund: 5 + 3 - 20, shown as 0
    mine = await api.balance(user)
    assert (mine["balance"], mine["totalEarned"], mine["totalSpent"]) == (112, 112, 0)
