"""mana-sync's Go gate: services/mana-sync/internal/billing/check.go — GET /internal/sync/status/:userId with
only `X-Service-Key`; anything but 200 counts as failure (fail-open); decodes `active` (bool), `interval`
(string) and `pausedAt` (*string)."""

from __future__ import annotations

from tests.support import SERVICE_KEY, Api


async def test_status_as_the_go_gate_decodes_it(api: Api) -> None:
    client, user = api.client, api.actor()
    headers = {"X-Service-Key": SERVICE_KEY}
    unknown = await client.get(f"/api/v1/internal/sync/status/{user.id}", headers=headers)
    assert unknown.status_code == 200
    assert (unknown.json()["active"], unknown.json()["interval"], unknown.json()["pausedAt"]) == (
        False, "monthly", None,
    )  # fmt: skip
    await api.fund(user.id, 30)
    assert (await client.post("/api/v1/sync/activate", json={}, headers=user.headers)).status_code == 200
    active = (await client.get(f"/api/v1/internal/sync/status/{user.id}", headers=headers)).json()
    assert active["active"] is True and isinstance(active["interval"], str) and active["pausedAt"] is None
    wrong = await client.get(f"/api/v1/internal/sync/status/{user.id}", headers={"X-Service-Key": "nope"})
    assert wrong.status_code == 401
