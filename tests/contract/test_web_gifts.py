"""The web app's gift pages: apps/mana/apps/web/src/lib/api/gifts.ts as used by
routes/(app)/gifts/+page.svelte (create, created and received lists, cancel), gifts/redeem/+page.svelte
(look a code up) and gifts/redeem/[code]/+page.svelte (look up, redeem). Its own spellings, which neither
the old service nor this one answered before: createGift sends `credits` (and may send `expiresAt`) with
`sourceAppId: 'mana-web'`, reads `.code`/`.url`; the lists read `.url`, `.totalCredits`, `.redeemed` and
`.credits`/`.redeemedAt`; the public info `.isPersonalized`; the redeem `.success`, `.credits`,
`.newBalance`. Public calls send only `Content-Type`, the others the Bearer token too; a failed call
shows the body's `message`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from mana_credits.context import AppContext
from tests.gifts.conftest import assert_audit_clean
from tests.support import Actor, Api

JSON = {"Content-Type": "application/json"}


async def _with_auth(client: httpx.AsyncClient, user: Actor, method: str, path: str, **kw: Any) -> Any:
    response = await client.request(method, path, headers={**JSON, **user.headers}, **kw)
    assert response.is_success, response.text
    return response.json()


async def _create(client: httpx.AsyncClient, user: Actor, request: dict[str, Any]) -> httpx.Response:
    """giftsService.createGift: `{ ...request, sourceAppId: 'mana-web' }`."""
    body = {**request, "sourceAppId": "mana-web"}
    return await client.post("/api/v1/gifts", json=body, headers={**JSON, **user.headers})


async def test_the_gift_pages_work_unchanged(api: Api, ctx: AppContext) -> None:
    client = api.client
    creator, friend = api.actor(name="Anna Beispiel"), api.actor()
    await api.fund(creator.id, 200)
    await api.fund(friend.id, 5)

    # +page.svelte handleCreate: credits, type, targetEmail if personalized, message trimmed or left out.
    simple = await _create(client, creator, {"credits": 50, "type": "simple", "message": "Viel Spaß"})
    assert simple.status_code == 201, simple.text
    created = simple.json()
    assert created["url"] == created["shortUrl"] == f"{ctx.settings.WEB_APP_URL}/g/{created['code']}"
    assert created["totalCredits"] == 50
    personal = await _create(
        client, creator, {"credits": 25, "type": "personalized", "targetEmail": friend.email}
    )
    assert personal.status_code == 201, personal.text
    until = (ctx.clock.now() + timedelta(days=30)).replace(microsecond=0)
    dated = await _create(client, creator, {"credits": 10, "expiresAt": until.isoformat()})
    assert dated.status_code == 201, dated.text
    assert datetime.fromisoformat(dated.json()["expiresAt"]) == until
    assert (await api.balance(creator))["balance"] == 115

    # loadData: received and created together.
    mine = await _with_auth(client, creator, "GET", "/api/v1/gifts/me/created")
    assert [(g["code"], g["url"], g["totalCredits"], g["redeemed"], g["status"]) for g in mine] == [
        (g.json()["code"], g.json()["url"], g.json()["totalCredits"], 0, "active")
        for g in (dated, personal, simple)
    ]
    assert all(isinstance(g["id"], str) and datetime.fromisoformat(g["createdAt"]) for g in mine)

    # redeem/+page.svelte and redeem/[code]: getGiftInfo(code.toUpperCase()), public.
    code = created["code"].upper()
    info = (await client.get(f"/api/v1/gifts/{code}", headers=JSON)).json()
    assert (info["totalCredits"], info["status"], info["type"], info["isPersonalized"]) == (
        50, "active", "simple", False,
    )  # fmt: skip
    assert (info["creatorName"], info["message"], info["redeemed"]) == ("Anna Beispiel", "Viel Spaß", False)
    personal_info = (await client.get(f"/api/v1/gifts/{personal.json()['code']}", headers=JSON)).json()
    assert personal_info["isPersonalized"] is True

    # handleRedeem: result.success, result.credits || 0, result.newBalance || 0.
    redeemed = await _with_auth(
        client, friend, "POST", f"/api/v1/gifts/{code}/redeem", json={"sourceAppId": "mana-web"}
    )
    assert (redeemed["success"], redeemed["credits"], redeemed["newBalance"]) == (True, 50, 55)
    assert redeemed["creditsReceived"] == 50
    again = await _with_auth(
        client,
        friend,
        "POST",
        f"/api/v1/gifts/{personal.json()['code']}/redeem",
        json={"sourceAppId": "mana-web"},
    )
    assert (again["credits"], again["newBalance"]) == (25, 80)

    received = await _with_auth(client, friend, "GET", "/api/v1/gifts/me/received")
    assert [(g["code"], g["credits"], g["creatorName"]) for g in received] == [
        (personal.json()["code"], 25, "Anna Beispiel"), (code, 50, "Anna Beispiel"),
    ]  # fmt: skip
    assert all(
        datetime.fromisoformat(g["redeemedAt"]) == datetime.fromisoformat(g["createdAt"]) for g in received
    )
    assert received[1]["message"] == "Viel Spaß"

    # handleCancel: refundedCredits.
    cancelled = await _with_auth(client, creator, "DELETE", f"/api/v1/gifts/{dated.json()['id']}")
    assert cancelled["refundedCredits"] == 10
    assert (await api.balance(creator))["balance"] == 125
    await assert_audit_clean(ctx)


async def test_two_spellings_that_disagree_are_refused(api: Api, ctx: AppContext) -> None:
    client, creator = api.client, api.actor()
    await api.fund(creator.id, 100)
    soon = (ctx.clock.now() + timedelta(days=3)).isoformat()
    for body, field in (
        ({"credits": 50, "totalCredits": 40}, "credits"),
        ({"totalCredits": 5, "expiresAt": soon, "expirationDays": 3}, "expiresAt"),
        ({"credits": 5, "expiresAt": (ctx.clock.now() - timedelta(hours=1)).isoformat()}, "expiresAt"),
        ({"credits": 5, "expiresAt": (ctx.clock.now() + timedelta(days=366)).isoformat()}, "expiresAt"),
        ({"type": "simple"}, "totalCredits"),
    ):
        refused = await _create(client, creator, body)
        assert refused.status_code == 400, (body, refused.text)
        answer = refused.json()
        assert answer["code"] == "validation_error" and field in answer["message"], answer
        assert field in [f["field"] for f in answer["details"]["fields"]]
    both = await _create(client, creator, {"credits": 30, "totalCredits": 30})
    assert both.status_code == 201 and both.json()["totalCredits"] == 30
    assert (await api.balance(creator))["balance"] == 70
    await assert_audit_clean(ctx)


async def test_the_published_document_names_the_aliases(client: httpx.AsyncClient) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    for name, field, alias_of in (
        ("CreateGift", "credits", "totalCredits"),
        ("Gift", "url", "shortUrl"),
        ("RedeemResult", "credits", "creditsReceived"),
        ("Redemption", "credits", "creditsReceived"),
        ("Redemption", "redeemedAt", "createdAt"),
    ):
        assert f"Alias of {alias_of}" in schemas[name]["properties"][field]["description"], (name, field)
    assert "newBalance" in schemas["RedeemResult"]["required"]
    assert "isPersonalized" in schemas["PublicGift"]["required"]
