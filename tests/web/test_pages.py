"""The pages over plain HTTP: headers, language, the development sign-in, and the two API additions the
pages use (usage per day and app; a purchase's id in its return URL)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import jwt
import pytest

from mana_credits.auth.devkey import DEV_KID
from mana_credits.config import Settings
from tests.payments.stripe_fakes import StripeStub
from tests.web.conftest import Site

PAGES = ["/app", "/app/sync", "/app/gifts", "/app/sign-in", "/app/purchase/x", "/g/ABCD2345"]


@pytest.mark.parametrize("path", PAGES)
async def test_pages_are_html_with_a_strict_policy(site: Site, path: str) -> None:
    response = await site.client.get(path)

    assert response.status_code == (404 if path.startswith("/g/") else 200)  # that gift does not exist
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "'unsafe-inline'" not in policy
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["referrer-policy"] == "no-referrer"
    assert '<html lang="de">' in response.text  # German unless asked otherwise


async def test_json_answers_keep_their_own_headers(site: Site) -> None:
    response = await site.client.get("/api/v1/credits/packages")
    assert "content-security-policy" not in response.headers


async def test_production_pages_may_talk_to_mana_auth_only_besides_themselves(sso_site: Site) -> None:
    response = await sso_site.client.get("/app")
    auth_origin = sso_site.server.ctx.settings.MANA_AUTH_URL.rstrip("/")
    assert f"connect-src 'self' {auth_origin};" in response.headers["content-security-policy"]
    assert 'data-auth="sso"' in response.text


async def test_language_follows_accept_language_and_the_toggle(site: Site) -> None:
    english = await site.client.get("/app/gifts", headers={"Accept-Language": "en-US,en;q=0.9,de;q=0.8"})
    assert '<html lang="en">' in english.text and "Redeem a gift" in english.text
    german = await site.client.get("/app/gifts", headers={"Accept-Language": "fr, de;q=0.5, en;q=0.4"})
    assert "Geschenk einlösen" in german.text

    toggle = await site.client.get("/app/lang/en?next=/app/sync")
    assert toggle.status_code == 303 and toggle.headers["location"] == "/app/sync"
    assert "mana_lang=en" in toggle.headers["set-cookie"]
    chosen = await site.client.get("/app/sync", headers={"Cookie": "mana_lang=en", "Accept-Language": "de"})
    assert '<html lang="en">' in chosen.text


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example"])
async def test_the_toggle_never_redirects_off_site(site: Site, target: str) -> None:
    response = await site.client.get("/app/lang/de", params={"next": target})
    assert response.headers["location"] == "/app"


async def test_the_pause_mail_link_lands_on_the_sync_page(site: Site) -> None:
    response = await site.client.get("/settings/sync")
    assert response.status_code == 303 and response.headers["location"] == "/app/sync"


def _meta(html: str, name: str) -> str | None:
    found = re.search(rf'<meta (?:property|name)="{re.escape(name)}" content="([^"]*)">', html)
    return found.group(1) if found else None


async def test_the_public_gift_page_is_rendered_on_the_server_for_link_previews(site: Site) -> None:
    creator = await site.user(funds=2000, email="erin@example.com")
    made = await site.client.post(
        "/api/v1/gifts", headers=creator.headers,
        json={"totalCredits": 1500, "creatorName": "Erin <Admin>", "message": 'Für <b>dich</b> & "mehr"'},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    response = await site.client.get(f"/g/{made.json()['code']}", headers={"Cookie": "mana_lang=de"})

    assert response.status_code == 200
    html = response.text
    assert "1.500 Credits" in html and "Erin &lt;Admin&gt; schenkt dir" in html
    assert "Für &lt;b&gt;dich&lt;/b&gt; &amp; &#34;mehr&#34;" in html and "<b>dich</b>" not in html
    assert "erin@example.com" not in html
    assert _meta(html, "og:title") == "Erin &lt;Admin&gt; schenkt dir 1.500 Credits"
    assert _meta(html, "og:description") == "Für &lt;b&gt;dich&lt;/b&gt; &amp; &#34;mehr&#34;"
    assert _meta(html, "twitter:card") == "summary"
    assert _meta(html, "og:url") == f"{site.url}/g/{made.json()['code']}"
    english = await site.client.get(f"/g/{made.json()['code']}", headers={"Cookie": "mana_lang=en"})
    assert _meta(english.text, "og:title") == "Erin &lt;Admin&gt; gives you 1,500 credits"


async def test_an_unknown_gift_code_is_a_404_page_without_a_preview(site: Site) -> None:
    response = await site.client.get("/g/NOSUCH23", headers={"Cookie": "mana_lang=de"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Diesen Code gibt es nicht." in response.text
    assert _meta(response.text, "og:title") is None
    long = await site.client.get("/g/" + "A" * 65)
    assert long.status_code == 404 and "text/html" in long.headers["content-type"]


async def test_the_bare_address_leads_to_the_pages(site: Site) -> None:
    response = await site.client.get("/")
    assert response.status_code == 303 and response.headers["location"] == "/app"
    assert (await site.client.get("/app")).status_code == 200


async def test_the_start_up_banner_names_pages_that_exist(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    from mana_credits.cli import _print_welcome

    _print_welcome(Settings(MANA_CREDITS_ENV="development", PORT=3061))
    banner = capsys.readouterr().err
    paths = set(re.findall(r"http://localhost:3061(/app[\w/-]*)", banner))
    assert {"/app", "/app/sign-in"} <= paths, banner
    for path in paths:
        assert (await site.client.get(path)).status_code == 200, path


async def test_assets_are_served_by_the_service(site: Site) -> None:
    script = await site.client.get("/app/static/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert (await site.client.get("/app/static/app.css")).headers["content-type"].startswith("text/css")


async def test_development_sign_in_mints_a_token_the_api_accepts(site: Site) -> None:
    response = await site.client.post(
        "/app/dev-token", json={"userId": "web-dev-alice", "email": "a@example.com"}
    )
    assert response.status_code == 200, response.text
    token = response.json()["token"]

    balance = await site.client.get("/api/v1/credits/balance", headers={"Authorization": f"Bearer {token}"})
    assert balance.status_code == 200 and balance.json()["balance"] == 0
    assert jwt.get_unverified_header(token)["kid"] == DEV_KID


@pytest.mark.parametrize("body", [{}, {"userId": ""}, {"userId": "   "}, {"userId": "x" * 256}])
async def test_development_sign_in_names_the_bad_field(site: Site, body: dict[str, str]) -> None:
    response = await site.client.post("/app/dev-token", json=body)
    assert response.status_code == 400
    assert response.json()["details"]["fields"][0]["field"] == "userId"


async def test_production_has_no_development_sign_in(sso_site: Site) -> None:
    response = await sso_site.client.post("/app/dev-token", json={"userId": "mallory"})
    assert response.status_code in (404, 405)


async def test_usage_per_day_and_app(site: Site, web_database: str) -> None:
    user = await site.user(funds=100)
    await site.use(user, 5, "chat")
    await site.use(user, 7, "chat")
    await site.use(user, 4, "picture")
    conn = await asyncpg.connect(web_database)
    try:
        await conn.execute(
            "INSERT INTO credits.usage_stats (user_id, app_id, credits_used, date) VALUES "
            "($1, 'chat', 9, date_trunc('day', now() - interval '3 days', 'Europe/Berlin')), "
            "($1, 'chat', 50, date_trunc('day', now() - interval '40 days', 'Europe/Berlin'))",
            user.id,
        )
    finally:
        await conn.close()

    response = await site.client.get("/api/v1/credits/usage", headers=user.headers)

    assert response.status_code == 200, response.text
    body = response.json()
    today = datetime.now(ZoneInfo("Europe/Berlin")).date()
    assert (body["days"], body["timezone"], body["end"]) == (30, "Europe/Berlin", today.isoformat())
    assert body["start"] == (today - timedelta(days=29)).isoformat()
    assert body["total"] == 25  # the 40-day-old usage is outside the window
    assert body["items"] == [
        {"date": (today - timedelta(days=3)).isoformat(), "appId": "chat", "credits": 9},
        {"date": today.isoformat(), "appId": "chat", "credits": 12},
        {"date": today.isoformat(), "appId": "picture", "credits": 4},
    ]
    other = await site.user()
    assert (await site.client.get("/api/v1/credits/usage", headers=other.headers)).json()["total"] == 0


@pytest.mark.parametrize("params", [{"days": "0"}, {"days": "400"}, {"days": "x"}])
async def test_usage_refuses_bad_parameters(site: Site, params: dict[str, str]) -> None:
    user = await site.user()
    response = await site.client.get("/api/v1/credits/usage", params=params, headers=user.headers)
    assert response.status_code == 400 and response.json()["code"] == "validation_error"


async def test_usage_needs_a_token(site: Site) -> None:
    assert (await site.client.get("/api/v1/credits/usage")).status_code == 401


async def test_return_urls_may_name_their_purchase(site: Site, stripe_checkout: StripeStub) -> None:
    user = await site.user()
    package = (await site.client.get("/api/v1/credits/packages")).json()[0]
    response = await site.client.post(
        "/api/v1/credits/purchase",
        json={
            "packageId": package["id"],
            "successUrl": f"{site.url}/app/purchase/{{PURCHASE_ID}}",
            "cancelUrl": f"{site.url}/app?checkout=cancelled",
        },
        headers=user.headers,
    )

    assert response.status_code == 200, response.text
    purchase_id = response.json()["purchaseId"]
    path, form, _ = stripe_checkout.requests[-1]
    assert path == "/v1/checkout/sessions"
    assert form["success_url"] == f"{site.url}/app/purchase/{purchase_id}"
    assert form["cancel_url"] == f"{site.url}/app?checkout=cancelled"


async def test_usage_window_of_one_day(site: Site) -> None:
    user = await site.user(funds=10)
    await site.use(user, 3, "chat")
    body = (await site.client.get("/api/v1/credits/usage", params={"days": 1}, headers=user.headers)).json()
    assert (body["timezone"], body["days"], body["total"]) == ("Europe/Berlin", 1, 3)
    assert body["start"] == body["end"] == datetime.now(ZoneInfo("Europe/Berlin")).date().isoformat()
