"""The web app: apps/mana/apps/web/src/lib/api/credits.ts and api/sync.ts, read by
lib/stores/sync-billing.svelte.ts, components/settings/sections/SyncSection.svelte,
modules/credits/ListView.svelte and components/dashboard/widgets/CreditsWidget.svelte.
Every request carries `Content-Type: application/json` and the Bearer token; a failed call is shown
as the body's `message`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from mana_credits.kit.clock import Clock
from tests.payments.conftest import Instance
from tests.support import Actor, Api, service_headers


def _headers(user: Actor) -> dict[str, str]:
    return {"Content-Type": "application/json", **user.headers}


async def _fetch_with_auth(client: httpx.AsyncClient, user: Actor, path: str, **kwargs: Any) -> Any:
    """credits.ts/sync.ts `fetchWithAuth`: `response.ok` or throw `error.message`."""
    response = await client.request(kwargs.pop("method", "GET"), path, headers=_headers(user), **kwargs)
    assert response.is_success, response.text
    return response.json()


def _is_number(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


async def test_credits_page_and_dashboard_widget(api: Api) -> None:
    client, user = api.client, api.actor()
    await api.fund(user.id, 100)
    # ListView.svelte loads these together; CreditsWidget reads only `balance`.
    balance = await _fetch_with_auth(client, user, "/api/v1/credits/balance")
    assert (balance["balance"], balance["totalEarned"], balance["totalSpent"]) == (100, 100, 0)
    used = await _fetch_with_auth(
        client, user, "/api/v1/credits/use", method="POST",
        json={"amount": 2, "appId": "mana-web", "description": "PDF export"},
    )  # fmt: skip
    assert used["success"] is True and used["newBalance"]["balance"] == 98
    transactions = await _fetch_with_auth(client, user, "/api/v1/credits/transactions?limit=20&offset=0")
    assert isinstance(transactions, list)
    assert [(t["type"], t["amount"]) for t in transactions] == [("usage", -2), ("grant", 100)]
    for (
        tx
    ) in transactions:  # getTransactionIcon(tx.type), tx.description || tx.type, formatDate(tx.createdAt)
        assert isinstance(tx["description"], str) and datetime.fromisoformat(tx["createdAt"])
        assert {"id", "status", "balanceBefore", "balanceAfter"} <= set(tx)
    packages = (await client.get("/api/v1/credits/packages")).json()  # public: no token
    for pkg in packages:
        assert isinstance(pkg["id"], str) and isinstance(pkg["name"], str)
        assert _is_number(pkg["credits"]) and _is_number(pkg["priceEuroCents"])
    assert isinstance(await _fetch_with_auth(client, user, "/api/v1/credits/purchases"), list)

    # A refusal reaches the page as `error.message`.
    broke = await client.post(
        "/api/v1/credits/use", headers=_headers(user),
        json={"amount": 1000, "appId": "mana-web", "description": "too much"},
    )  # fmt: skip
    assert broke.status_code == 402 and "credits" in broke.json()["message"].lower()


async def test_buying_a_package_goes_to_checkout(checkout: Instance, make_package: Any) -> None:
    """creditsService.initiatePurchase: window.location.href = result.checkoutUrl."""
    user = checkout.api.actor()
    package = await make_package(credits=500, price=500)
    origin = "https://mana.test"  # window.location.origin of the web app (WEB_APP_URL)
    result = await _fetch_with_auth(
        checkout.client, user, "/api/v1/credits/purchase", method="POST",
        json={"packageId": str(package.id), "successUrl": f"{origin}/credits?success=true",
              "cancelUrl": f"{origin}/credits?canceled=true"},
    )  # fmt: skip
    assert result["checkoutUrl"].startswith("http")
    assert isinstance(result["purchaseId"], str)
    assert (result["amount"], result["credits"]) == (500, 500)


async def test_sync_settings_page(api: Api, clock: Clock) -> None:
    """SyncSection.svelte through the syncBilling store: load, activate, change interval, deactivate (twice,
    since the page shows Deactivate again while the paid period runs), and the paused state."""
    client, user = api.client, api.actor()
    await api.fund(user.id, 100)
    clock.set(datetime.fromisoformat("2026-06-01T10:00:00+00:00"))
    status = await _fetch_with_auth(client, user, "/api/v1/sync/status")
    assert (status["active"], status["interval"], status["nextChargeAt"], status["pausedAt"]) == (
        False, "monthly", None, None,
    )  # fmt: skip

    activated = await _fetch_with_auth(
        client, user, "/api/v1/sync/activate", method="POST", json={"interval": "monthly"}
    )
    assert (activated["success"], activated["active"], activated["interval"], activated["amountCharged"]) == (
        True, True, "monthly", 30,
    )  # fmt: skip
    assert datetime.fromisoformat(activated["nextChargeAt"]) > clock.now()

    changed = await _fetch_with_auth(
        client, user, "/api/v1/sync/change-interval", method="POST", json={"interval": "quarterly"}
    )
    # The store reads only `interval`; the change charged nothing, and amountCharged says so.
    assert (changed["success"], changed["interval"], changed["amountCharged"]) == (True, "quarterly", 0)
    status = await _fetch_with_auth(client, user, "/api/v1/sync/status")
    # "Next charge on …" while active and renewing.
    assert (status["active"], status["interval"], status["nextChargeAt"] is not None) == (
        True,
        "quarterly",
        True,
    )

    for _ in range(2):
        deactivated = await _fetch_with_auth(client, user, "/api/v1/sync/deactivate", method="POST", json={})
        assert deactivated["success"] is True
        status = await _fetch_with_auth(client, user, "/api/v1/sync/status")
        # The store: active = status.active, paused = pausedAt !== null && !active. The page then shows the
        # badge *inactive* and offers *Activate*: the cancel visibly worked (it showed *active* before).
        active, paused = status["active"], status["pausedAt"] is not None and not status["active"]
        assert (active, paused, status["nextChargeAt"]) == (False, False, None)
        assert status["cancelAtPeriodEnd"] is True and status["activeUntil"] is not None
    # mana-sync's gate reads the internal status: sync keeps working until the paid period ends.
    gate = await client.get(f"/api/v1/internal/sync/status/{user.id}", headers=service_headers())
    assert gate.json()["active"] is True

    # *Activate* before the end undoes the cancellation for free; then the renewal runs out of credits and
    # the store shows `paused`.
    balance_before = (await _fetch_with_auth(client, user, "/api/v1/credits/balance"))["balance"]
    resumed = await _fetch_with_auth(
        client, user, "/api/v1/sync/activate", method="POST", json={"interval": "quarterly"}
    )
    assert (resumed["active"], resumed["amountCharged"]) == (True, 0)
    assert (await _fetch_with_auth(client, user, "/api/v1/credits/balance"))["balance"] == balance_before
    clock.advance(timedelta(days=32))
    renewed = await client.post("/api/v1/internal/sync/charge-recurring", headers=service_headers())
    assert renewed.status_code == 200
    status = await _fetch_with_auth(client, user, "/api/v1/sync/status")
    assert (
        status["active"] is False and status["pausedAt"] is not None
    )  # paused = pausedAt !== null && !active
    refused = await client.post(
        "/api/v1/sync/activate", headers=_headers(user), json={"interval": "quarterly"}
    )
    assert refused.status_code == 402 and isinstance(refused.json()["message"], str)
