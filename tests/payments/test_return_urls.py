"""Checkout return URLs are real URLs on the web app's own origins (WEB_APP_URL, CORS_ORIGINS)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from mana_credits.payments.schemas import Package
from tests.payments.conftest import Instance

MakePackage = Callable[..., Awaitable[Package]]

REFUSED = [
    "http://n}",  # passes a ^https?:// check, but is no URL: Stripe refused it (502 before)
    "https://evil.example/steal",  # a real URL, but a redirect to anyone's site
    "https://mana.test.evil.example/x",
    "https://user@mana.test/x",
    "javascript://mana.test/%0aalert(1)",
    "https://mana.test:99999/x",
    "https://mana.test/" + "a" * 2100,
    "https://mana.test/a b",
]
ACCEPTED = [
    "https://mana.test/credits?paid=1",
    "https://MANA.test/credits?session={CHECKOUT_SESSION_ID}",
    "http://localhost:5173/credits",
]


@pytest.mark.parametrize("url", REFUSED)
async def test_a_bad_return_url_is_400_and_nothing_is_written(
    checkout: Instance, make_package: MakePackage, db: asyncpg.Connection, url: str
) -> None:
    user = checkout.api.actor()
    package = await make_package()
    for field in ("successUrl", "cancelUrl"):
        body = {"successUrl": "https://mana.test/ok", field: url}
        response = await checkout.buy(user, package, **body)
        assert response.status_code == 400, (field, response.status_code)
        assert response.json()["code"] == "validation_error"
    assert await db.fetchval("SELECT count(*) FROM credits.purchases WHERE user_id = $1", user.id) == 0


@pytest.mark.parametrize("url", ACCEPTED)
async def test_the_web_apps_own_urls_are_accepted(
    checkout: Instance, make_package: MakePackage, url: str
) -> None:
    response = await checkout.buy(checkout.api.actor(), await make_package(), successUrl=url, cancelUrl=url)
    assert response.status_code == 200, response.text
    assert "checkoutUrl" in response.json()
