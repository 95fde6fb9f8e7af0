"""Browser rig: Debian's Chromium driven by Playwright (one browser for the session, a fresh context per
test), two instances of the service on their own database, and a mana-auth stub that serves the JWKS and
turns a session cookie into a token, as mana-auth does for Mana's web apps.

- `site`: development mode ("sign in as" form), Stripe Checkout against the Stripe stub.
- `sso_site`: production mode, signing in through the mana-auth stub.

Without Chromium every browser test is skipped, and the session ends with a loud note saying so.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright

from mana_credits.app import create_app
from mana_credits.kit.clock import Clock
from mana_credits.payments import repository as packages
from tests.conftest import LiveServer, _copy_template, make_settings
from tests.payments.stripe_fakes import WEBHOOK_SECRET, StripeStub
from tests.support import Actor, Api, JwksServer, StubHandler, ThreadedStub, service_headers

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()
SCREENSHOTS = Path(__file__).parent / "screenshots"
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
STRIPE_KEY = "sk_test_mana_credits_web"
SKIPPED: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if HAVE_CHROMIUM:
        return
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.skip(reason=f"no Chromium at {CHROMIUM}: browser test skipped"))
            SKIPPED.append(item.nodeid)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SKIPPED:
        terminalreporter.write_sep("!", "BROWSER TESTS SKIPPED", red=True, bold=True)
        terminalreporter.write_line(
            f"{len(SKIPPED)} browser tests did not run: no Chromium at {CHROMIUM}. "
            "Install it (`apt-get install -y chromium`, as .ci/run does) to test the web pages.",
            red=True,
            bold=True,
        )


class ManaAuthStub(ThreadedStub):
    """mana-auth as the browser sees it: `/sign-in?user=…` sets the session cookie that Mana's apps share,
    `POST /api/v1/auth/session-to-token` (credentialed CORS) answers `{accessToken}` for that session."""

    COOKIE = "mana.session"

    def __init__(self, jwks: JwksServer) -> None:
        stub = self

        class Handler(StubHandler):
            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                self.send_json(status, body, {**stub.cors(self.headers.get("Origin")), **(headers or {})})

            def do_OPTIONS(self) -> None:
                self._send(204 if self.path == "/api/v1/auth/session-to-token" else 404, {})

            def do_GET(self) -> None:
                if self.path == "/api/auth/jwks":
                    self._send(200, {"keys": jwks.jwks()})
                elif self.path.startswith("/sign-in?"):
                    query = dict(item.split("=", 1) for item in self.path.split("?", 1)[1].split("&"))
                    cookie = f"{stub.COOKIE}={query['user']}; Path=/; HttpOnly; SameSite=Lax"
                    self._send(200, {"signedIn": query["user"]}, {"Set-Cookie": cookie})
                else:
                    self._send(404, {})

            def do_POST(self) -> None:
                if self.path != "/api/v1/auth/session-to-token":
                    self._send(404, {})
                    return
                cookies = dict(
                    part.strip().split("=", 1)
                    for part in (self.headers.get("Cookie") or "").split(";")
                    if "=" in part
                )
                user = cookies.get(stub.COOKIE)
                if not user:
                    self._send(401, {"message": "No valid session"})
                    return
                token = jwks.mint({"sub": user, "email": f"{user}@example.com", "name": user})
                self._send(200, {"accessToken": token, "refreshToken": "session-token"})

        self.serve(Handler)

    @staticmethod
    def cors(origin: str | None) -> dict[str, str]:
        if not origin:
            return {}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": "Content-Type",
        }


@dataclass
class Site:
    """One served instance of the service with an HTTP client and test users."""

    url: str
    server: LiveServer
    client: httpx.AsyncClient
    api: Api
    clock: Clock

    async def user(self, funds: int = 0, **claims: Any) -> Actor:
        actor = self.api.actor(**claims)
        if funds:
            await self.api.fund(actor.id, funds)
        return actor

    async def use(self, actor: Actor, amount: int, app: str) -> None:
        response = await self.client.post(
            "/api/v1/internal/credits/use",
            json={"userId": actor.id, "amount": amount, "appId": app, "description": f"{app} work"},
            headers=service_headers(app),
        )
        assert response.status_code == 200, response.text


@pytest.fixture(scope="session")
async def web_database(pg_admin_url: str, template_url: str) -> AsyncIterator[str]:
    """The pages list every package: their own database keeps other tests' packages off them."""
    url = await _copy_template(pg_admin_url, "mana_credits_web")
    conn = await asyncpg.connect(url)
    try:
        await packages.seed_default_packages(conn)
    finally:
        await conn.close()
    yield url


@pytest.fixture(scope="session")
def stripe_checkout() -> Iterator[StripeStub]:
    stub = StripeStub()
    yield stub
    stub.close()


@pytest.fixture(scope="session")
def auth_stub(jwks: JwksServer) -> Iterator[ManaAuthStub]:
    stub = ManaAuthStub(jwks)
    yield stub
    stub.close()


async def _site(database: str, jwks: JwksServer, clock: Clock, **overrides: Any) -> Site:
    settings = make_settings(database, jwks, **overrides)
    server = LiveServer(create_app(settings, clock=clock))
    url = await server.start()
    # Gift links (and the pause mail) point at the pages this instance serves.
    settings.BASE_URL = settings.WEB_APP_URL = url
    client = httpx.AsyncClient(base_url=url, timeout=60)
    return Site(url, server, client, Api(client, jwks), clock)


@pytest.fixture(scope="session")
async def site(
    web_database: str, jwks: JwksServer, clock: Clock, stripe_checkout: StripeStub
) -> AsyncIterator[Site]:
    data_dir = Path(tempfile.mkdtemp(prefix="mana-credits-web-"))
    served = await _site(
        web_database, jwks, clock, MANA_CREDITS_ENV="development", MANA_CREDITS_DATA_DIR=data_dir,
        STRIPE_SECRET_KEY=STRIPE_KEY, STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=stripe_checkout.url,
    )  # fmt: skip
    yield served
    await served.client.aclose()
    await served.server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
async def site_without_stripe(web_database: str, jwks: JwksServer, clock: Clock) -> AsyncIterator[Site]:
    """`make run` as a newcomer has it: development, no Stripe keys."""
    data_dir = Path(tempfile.mkdtemp(prefix="mana-credits-web-"))
    served = await _site(
        web_database, jwks, clock, MANA_CREDITS_ENV="development", MANA_CREDITS_DATA_DIR=data_dir
    )
    yield served
    await served.client.aclose()
    await served.server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
async def sso_site(
    web_database: str, jwks: JwksServer, clock: Clock, auth_stub: ManaAuthStub
) -> AsyncIterator[Site]:
    served = await _site(web_database, jwks, clock, MANA_AUTH_URL=auth_stub.url, JWT_ISSUER=jwks.url)
    yield served
    await served.client.aclose()
    await served.server.stop()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        await launched.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile (own localStorage and cookies), German first, desktop-sized."""
    ctx = await browser.new_context(viewport=DESKTOP, locale="de-DE", timezone_id="Europe/Berlin")
    ctx.set_default_timeout(15_000)
    errors: list[str] = []
    ctx.on("weberror", lambda error: errors.append(str(error.error)))
    ctx.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    yield ctx
    await ctx.close()
    # A script error or a CSP violation on any page fails the test that caused it
    # (An API answering 4xx is logged by the browser too; that is the page's business, not an error.)
    assert not [e for e in errors if not e.startswith("Failed to load resource")], errors


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    return await context.new_page()


async def sign_in(page: Page, site: Site, actor: Actor, next_path: str = "/app") -> None:
    """The development sign-in form, as a person uses it."""
    await page.goto(f"{site.url}/app/sign-in?next={next_path}")
    await page.get_by_label("Nutzer-ID").fill(actor.id)
    await page.get_by_label("E-Mail (optional)").fill(actor.email)
    await page.get_by_label("Name (optional)").fill(actor.name)
    await page.get_by_role("button", name="Anmelden als dieser Nutzer").click()
    await page.wait_for_url(f"{site.url}{next_path}")


async def shoot(page: Page, name: str) -> None:
    """Full-page screenshots at desktop and phone width (tests/web/screenshots/, not in git)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    await page.wait_for_load_state("networkidle")
    await page.screenshot(path=SCREENSHOTS / f"{name}-desktop.png", full_page=True)
    await page.set_viewport_size(PHONE)
    # The usage chart redraws itself for the new width.
    await page.wait_for_function(
        "() => { const c = document.querySelector('#usage-chart svg');"
        " return !c || Number(c.getAttribute('width')) <= innerWidth; }"
    )
    await page.screenshot(path=SCREENSHOTS / f"{name}-phone.png", full_page=True)
    await page.set_viewport_size(DESKTOP)


def fresh_id() -> str:
    return f"u-{uuid.uuid4()}"
