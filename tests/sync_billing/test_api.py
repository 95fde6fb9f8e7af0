"""The user-facing subscription over real HTTP: activate, deactivate, change interval, gifts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg

from mana_credits.kit.clock import Clock
from mana_credits.ledger.audit import audit
from tests.support import Api, service_headers
from tests.sync_billing.helpers import activate, near, run_renewals, status


async def sync_charges(db: asyncpg.Connection, user_id: str) -> list[int]:
    rows = await db.fetch(
        "SELECT amount FROM credits.transactions WHERE user_id = $1 AND app_id = 'sync' ORDER BY created_at",
        user_id,
    )
    return [row["amount"] for row in rows]


async def test_status_without_a_subscription(api: Api) -> None:
    user = api.actor()
    assert await status(api, user) == {
        "active": False, "interval": "monthly", "nextChargeAt": None, "pausedAt": None, "gifted": False,
        "cancelAtPeriodEnd": False, "amountCharged": 0, "nextChargeAmount": None, "activeUntil": None,
    }  # fmt: skip


async def test_activate_charges_one_period_and_sets_the_next_charge(
    api: Api, clock: Clock, db: asyncpg.Connection
) -> None:
    user = api.actor()
    await api.fund(user.id, 100)
    clock.set(datetime.fromisoformat("2026-01-31T12:00:00+00:00"))
    response = await activate(api, user)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["success"], body["active"], body["interval"], body["amountCharged"]) == (
        True, True, "monthly", 30,
    )  # fmt: skip
    assert near(body["nextChargeAt"], "2026-02-28T12:00:00+00:00")
    assert (await api.balance(user))["balance"] == 70
    body = await status(api, user)
    assert body["active"] is True
    assert near(body["nextChargeAt"], "2026-02-28T12:00:00+00:00")
    assert body["activeUntil"] == body["nextChargeAt"]
    assert await sync_charges(db, user.id) == [-30]
    usage = await db.fetchval(
        "SELECT credits_used FROM credits.usage_stats WHERE user_id = $1 AND app_id = 'sync'", user.id
    )
    assert usage == 30

    again = await activate(api, user)
    assert again.status_code == 409
    assert again.json()["code"] == "sync_already_active"
    assert (await api.balance(user))["balance"] == 70


async def test_quarterly_and_yearly_prices(api: Api) -> None:
    for interval, price in (("quarterly", 90), ("yearly", 360)):
        user = api.actor()
        await api.fund(user.id, 400)
        response = await activate(api, user, interval)
        assert response.status_code == 200, response.text
        assert response.json()["amountCharged"] == price
        assert (await api.balance(user))["balance"] == 400 - price
        assert (await status(api, user))["interval"] == interval


async def test_insufficient_credits_is_402_and_changes_nothing(api: Api, db: asyncpg.Connection) -> None:
    user = api.actor()
    await api.fund(user.id, 20)
    response = await activate(api, user, "quarterly")
    assert response.status_code == 402
    body = response.json()
    assert body["code"] == "insufficient_credits"
    assert body["details"] == {"required": 90, "available": 20}
    assert (await status(api, user))["active"] is False
    assert (
        await db.fetchval("SELECT count(*) FROM credits.sync_subscriptions WHERE user_id = $1", user.id) == 0
    )
    assert await sync_charges(db, user.id) == []
    assert (await api.balance(user))["balance"] == 20


async def test_concurrent_activations_charge_once(api: Api, db: asyncpg.Connection) -> None:
    user = api.actor()
    await api.fund(user.id, 1000)
    responses = await asyncio.gather(*(activate(api, user) for _ in range(8)))
    codes = sorted(response.status_code for response in responses)
    assert codes == [200] + [409] * 7, [r.text for r in responses]
    assert (await api.balance(user))["balance"] == 970
    assert await sync_charges(db, user.id) == [-30]
    assert await audit(db) == []


async def test_bad_interval_is_400(api: Api) -> None:
    user = api.actor()
    await api.fund(user.id, 100)
    response = await activate(api, user, "weekly")
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    # The message names what would have been accepted.
    assert "'weekly'" in response.json()["message"]
    assert "allowed: 'monthly', 'quarterly', 'yearly'" in response.json()["message"]
    assert response.json()["details"]["fields"][0]["field"] == "interval"
    assert (await activate(api, user)).status_code == 200
    for body in ({"interval": "daily"}, {}, {"interval": 3}):
        response = await api.client.post("/api/v1/sync/change-interval", json=body, headers=user.headers)
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "validation_error"
    malformed = await api.client.post(
        "/api/v1/sync/activate",
        content=b"{not json",
        headers={**user.headers, "Content-Type": "application/json"},
    )
    assert malformed.status_code == 400


async def test_deactivate_keeps_sync_until_period_end_then_stops_without_charge(
    api: Api, clock: Clock, db: asyncpg.Connection
) -> None:
    user = api.actor()
    await api.fund(user.id, 100)
    clock.set(datetime.fromisoformat("2026-03-10T08:00:00+00:00"))
    assert (await activate(api, user)).status_code == 200
    response = await api.client.post("/api/v1/sync/deactivate", headers=user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["success"], body["active"]) == (True, False)  # as the user's status now reads
    assert near(body["activeUntil"], "2026-04-10T08:00:00+00:00")
    body = await status(api, user)
    # The user sees it cancelled (active: false, until when); mana-sync's gate still lets sync work.
    assert (body["active"], body["cancelAtPeriodEnd"], body["nextChargeAt"]) == (False, True, None)
    assert near(body["activeUntil"], "2026-04-10T08:00:00+00:00")
    gate = await api.client.get(f"/api/v1/internal/sync/status/{user.id}", headers=service_headers())
    assert (gate.json()["active"], gate.json()["cancelAtPeriodEnd"]) == (True, True)

    # Pressing it again (a retry, a second tab) is a no-op 200.
    again = await api.client.post("/api/v1/sync/deactivate", headers=user.headers)
    assert again.status_code == 200, again.text
    assert again.json() == response.json()
    body = await status(api, user)
    assert (body["active"], body["cancelAtPeriodEnd"], body["nextChargeAt"]) == (False, True, None)

    clock.set(datetime.fromisoformat("2026-04-10T08:02:00+00:00"))
    assert (await status(api, user))["active"] is False  # even before the renewal job ran
    await run_renewals(api)
    body = await status(api, user)
    assert (body["active"], body["cancelAtPeriodEnd"], body["pausedAt"]) == (False, False, None)
    assert await sync_charges(db, user.id) == [-30]
    assert (await api.balance(user))["balance"] == 70

    # Activating afterwards starts a new paid period.
    response = await activate(api, user)
    assert response.json()["amountCharged"] == 30
    assert near(response.json()["nextChargeAt"], "2026-05-10T08:02:00+00:00")


async def test_reactivating_before_period_end_is_free_and_renewals_continue(
    api: Api, clock: Clock, db: asyncpg.Connection
) -> None:
    user = api.actor()
    await api.fund(user.id, 200)
    clock.set(datetime.fromisoformat("2026-05-31T09:00:00+00:00"))
    assert (await activate(api, user, "quarterly")).status_code == 200
    assert (await api.client.post("/api/v1/sync/deactivate", headers=user.headers)).status_code == 200
    clock.advance(timedelta(days=10))
    response = await activate(api, user)  # no interval given: the subscription keeps its own
    assert response.status_code == 200
    body = response.json()
    assert (body["success"], body["active"], body["interval"], body["amountCharged"]) == (
        True, True, "quarterly", 0,
    )  # fmt: skip
    assert near(body["nextChargeAt"], "2026-08-31T09:00:00+00:00")
    assert await sync_charges(db, user.id) == [-90]
    body = await status(api, user)
    assert (body["active"], body["cancelAtPeriodEnd"]) == (True, False)

    clock.set(datetime.fromisoformat("2026-08-31T09:02:00+00:00"))
    await run_renewals(api)
    assert await sync_charges(db, user.id) == [-90, -90]
    assert near((await status(api, user))["nextChargeAt"], "2026-11-30T09:00:00+00:00")


async def test_change_interval_applies_at_the_next_charge(
    api: Api, clock: Clock, db: asyncpg.Connection
) -> None:
    user = api.actor()
    await api.fund(user.id, 500)
    missing = await api.client.post(
        "/api/v1/sync/change-interval", json={"interval": "yearly"}, headers=user.headers
    )
    assert missing.status_code == 409
    assert missing.json()["code"] == "sync_not_active"

    clock.set(datetime.fromisoformat("2026-01-15T00:00:00+00:00"))
    assert (await activate(api, user)).status_code == 200
    response = await api.client.post(
        "/api/v1/sync/change-interval", json={"interval": "yearly"}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    # Nothing is charged now: amountCharged says so, the next renewal's price is named apart.
    assert (body["success"], body["interval"], body["amountCharged"], body["nextChargeAmount"]) == (
        True, "yearly", 0, 360,
    )  # fmt: skip
    assert near(body["effectiveAt"], "2026-02-15T00:00:00+00:00")
    assert (await api.balance(user))["balance"] == 470
    body = await status(api, user)
    assert (body["interval"], body["amountCharged"], body["nextChargeAmount"]) == ("yearly", 30, 360)
    assert near(body["nextChargeAt"], "2026-02-15T00:00:00+00:00")
    # The interval already chosen again: a no-op that charges and changes nothing.
    same = await api.client.post(
        "/api/v1/sync/change-interval", json={"interval": "yearly"}, headers=user.headers
    )
    assert same.status_code == 200, same.text
    assert (same.json()["interval"], same.json()["amountCharged"]) == ("yearly", 0)
    assert await sync_charges(db, user.id) == [-30]

    clock.set(datetime.fromisoformat("2026-02-15T00:02:00+00:00"))
    await run_renewals(api)
    assert await sync_charges(db, user.id) == [-30, -360]
    body = await status(api, user)
    assert near(body["nextChargeAt"], "2027-02-15T00:00:00+00:00")
    assert (body["amountCharged"], body["nextChargeAmount"]) == (360, 360)  # what this period cost


async def test_idempotency_key_replays_the_activation(api: Api, db: asyncpg.Connection) -> None:
    user = api.actor()
    await api.fund(user.id, 100)
    headers = {**user.headers, "Idempotency-Key": "activate-once"}
    first = await api.client.post("/api/v1/sync/activate", json={"interval": "monthly"}, headers=headers)
    second = await api.client.post("/api/v1/sync/activate", json={"interval": "monthly"}, headers=headers)
    assert first.status_code == second.status_code == 200
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert second.json() == first.json()
    other = await api.client.post("/api/v1/sync/activate", json={"interval": "yearly"}, headers=headers)
    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_key_reused"
    assert await sync_charges(db, user.id) == [-30]


async def test_internal_status_matches_the_users_view(api: Api) -> None:
    user = api.actor()
    await api.fund(user.id, 30)
    assert (await activate(api, user)).status_code == 200
    response = await api.client.get(f"/api/v1/internal/sync/status/{user.id}", headers=service_headers())
    assert response.status_code == 200
    assert response.json() == await status(api, user)
    assert (await api.client.get(f"/api/v1/internal/sync/status/{user.id}")).status_code == 401
    assert (await api.client.post("/api/v1/internal/sync/charge-recurring")).status_code == 401
    unknown = await api.client.get("/api/v1/internal/sync/status/nobody-here", headers=service_headers())
    assert unknown.json()["active"] is False


async def test_gifted_sync_is_active_never_charged_and_revocable(
    api: Api, clock: Clock, db: asyncpg.Connection
) -> None:
    admin = api.actor(role="admin")
    user = api.actor()
    base = f"/api/v1/admin/sync/{user.id}"
    response = await api.client.post(f"{base}/gift", headers=admin.headers)
    assert response.status_code == 200, response.text
    assert response.json()["gifted"] is True
    assert response.json()["giftedBy"] == admin.id
    body = await status(api, user)
    assert (body["active"], body["gifted"], body["nextChargeAt"]) == (True, True, None)

    for path in ("/api/v1/sync/activate", "/api/v1/sync/deactivate"):
        refused = await api.client.post(path, headers=user.headers)
        assert refused.status_code == 409
        assert refused.json()["code"] == "sync_gifted"

    clock.advance(timedelta(days=400))
    await run_renewals(api)
    assert await sync_charges(db, user.id) == []
    assert (await status(api, user))["active"] is True

    view = await api.client.get(base, headers=admin.headers)
    assert view.status_code == 200
    assert view.json()["userId"] == user.id
    keyed = {**admin.headers, "Idempotency-Key": f"revoke-{user.id}"}
    revoked = await api.client.delete(f"{base}/gift", headers=keyed)
    assert revoked.status_code == 200
    replayed = await api.client.delete(f"{base}/gift", headers=keyed)
    assert (replayed.status_code, replayed.headers.get("Idempotent-Replayed")) == (200, "true")
    assert (revoked.json()["gifted"], revoked.json()["active"]) == (False, False)
    assert (await status(api, user))["active"] is False
    again = await api.client.delete(f"{base}/gift", headers=admin.headers)
    assert again.status_code == 409
    assert again.json()["code"] == "sync_not_gifted"
    too_long = await api.client.post(f"/api/v1/admin/sync/{'x' * 300}/gift", headers=admin.headers)
    assert too_long.status_code == 400
    assert too_long.json()["code"] == "validation_error"


async def test_gift_over_a_paid_subscription_suspends_its_renewals(
    api: Api, clock: Clock, db: asyncpg.Connection
) -> None:
    admin = api.actor(role="admin")
    user = api.actor()
    await api.fund(user.id, 100)
    assert (await activate(api, user)).status_code == 200
    assert (
        await api.client.post(f"/api/v1/admin/sync/{user.id}/gift", headers=admin.headers)
    ).status_code == 200
    clock.advance(timedelta(days=95))
    await run_renewals(api)
    assert await sync_charges(db, user.id) == [-30]
    # Revoked: the paid subscription resumes and charges one period from now (no back-charging).
    assert (
        await api.client.delete(f"/api/v1/admin/sync/{user.id}/gift", headers=admin.headers)
    ).status_code == 200
    await run_renewals(api)
    assert await sync_charges(db, user.id) == [-30, -30]
    assert await audit(db) == []


async def test_admin_routes_refuse_non_admins(api: Api) -> None:
    user = api.actor()
    target = api.actor()
    base = f"/api/v1/admin/sync/{target.id}"
    for method, path in (("GET", base), ("POST", f"{base}/gift"), ("DELETE", f"{base}/gift")):
        response = await api.client.request(method, path, headers=user.headers)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["code"] == "forbidden"
        assert (await api.client.request(method, path)).status_code == 401
    assert (await status(api, target))["gifted"] is False


async def test_revoked_gift_never_charges_the_gifted_days(
    api: Api, clock: Clock, db: asyncpg.Connection
) -> None:
    admin = api.actor(role="admin")
    user = api.actor()
    await api.fund(user.id, 100)
    clock.set(datetime(2024, 1, 1, 12, tzinfo=UTC))
    assert (await activate(api, user)).status_code == 200  # paid until 2024-02-01
    clock.set(datetime(2024, 1, 15, 12, tzinfo=UTC))
    assert (
        await api.client.post(f"/api/v1/admin/sync/{user.id}/gift", headers=admin.headers)
    ).status_code == 200
    clock.set(datetime(2024, 2, 25, 12, tzinfo=UTC))
    revoked = await api.client.delete(f"/api/v1/admin/sync/{user.id}/gift", headers=admin.headers)
    assert revoked.status_code == 200
    await run_renewals(api)
    rows = await db.fetch(
        "SELECT amount, metadata FROM credits.transactions WHERE user_id = $1 AND app_id = 'sync' "
        "ORDER BY created_at",
        user.id,
    )
    assert [r["amount"] for r in rows] == [-30, -30]
    # The second period starts when the gift ended, not at the old due date inside the gift.
    assert near(rows[1]["metadata"]["periodStart"], "2024-02-25T12:00:00+00:00")
    assert near((await status(api, user))["nextChargeAt"], "2024-03-25T12:00:00+00:00")


async def test_revoking_a_gift_without_a_paid_subscription_turns_sync_off(
    api: Api, clock: Clock, db: asyncpg.Connection
) -> None:
    admin = api.actor(role="admin")
    user = api.actor()
    # As the old service stored a gift: active, gifted, no charge date.
    await db.execute(
        "INSERT INTO credits.sync_subscriptions (user_id, active, is_gifted, gifted_by, gifted_at) "
        "VALUES ($1, true, true, 'old-admin', now())",
        user.id,
    )
    assert (await status(api, user))["active"] is True
    revoked = await api.client.delete(f"/api/v1/admin/sync/{user.id}/gift", headers=admin.headers)
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    clock.advance(timedelta(days=400))
    await run_renewals(api)
    assert (await status(api, user))["active"] is False
    # ...and the user can start paying.
    await api.fund(user.id, 30)
    assert (await activate(api, user)).status_code == 200
    assert await sync_charges(db, user.id) == [-30]
