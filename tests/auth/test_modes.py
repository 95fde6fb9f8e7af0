"""Development vs production trust, and the service-key start-up guard."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mana_credits.app import create_app
from mana_credits.auth import devkey
from mana_credits.config import Settings
from tests.conftest import LiveServer, make_settings
from tests.support import JwksServer


def test_production_refuses_the_default_service_key() -> None:
    with pytest.raises(RuntimeError, match="dev-service-key"):
        create_app(Settings(MANA_CREDITS_ENV="production", MANA_SERVICE_KEY="dev-service-key"))
    with pytest.raises(RuntimeError):
        Settings(MANA_SERVICE_KEY="s3cret", MANA_SERVICE_KEYS="chat:dev-service-key").check_safe_to_start()
    Settings(MANA_CREDITS_ENV="development").check_safe_to_start()  # allowed while developing


def test_settings_parse_lists() -> None:
    settings = Settings(
        MANA_SERVICE_KEYS="chat:k1, picture:k2,broken",
        JWT_ISSUER="https://a, https://b",
        MANA_AUTH_URL="http://auth",
    )
    assert settings.service_keys == {"k1": "chat", "k2": "picture"}
    assert settings.jwt_issuers == ["https://a", "https://b"]
    assert settings.jwks_url == "http://auth/api/auth/jwks"
    assert Settings(MANA_AUTH_URL="http://auth/").jwt_issuers == ["http://auth/"]


async def test_dev_token_is_trusted_only_in_development(
    tmp_path: Path, database_url_: str, jwks: JwksServer, client: httpx.AsyncClient
) -> None:
    settings = make_settings(
        database_url_,
        jwks,
        MANA_CREDITS_ENV="development",
        MANA_CREDITS_DATA_DIR=tmp_path,
        MANA_SERVICE_KEY="dev-service-key",
    )
    token = devkey.mint(
        devkey.load_or_create(settings.dev_key_path),
        user_id="dev-alice",
        issuer=settings.jwt_issuers[0],
        audience="mana",
    )
    server = LiveServer(create_app(settings))
    url = await server.start()
    try:
        async with httpx.AsyncClient(base_url=url) as dev_client:
            response = await dev_client.get(
                "/api/v1/credits/balance", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 200
            default_key = await dev_client.get(
                "/api/v1/internal/credits/balance/dev-alice", headers={"X-Service-Key": "dev-service-key"}
            )
            assert default_key.status_code == 200
    finally:
        await server.stop()
    # The production instance of the test session does not know that key.
    response = await client.get("/api/v1/credits/balance", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


async def test_development_gift_links_open_this_servers_page(
    tmp_path: Path, database_url_: str, jwks: JwksServer
) -> None:
    values = make_settings(
        database_url_, jwks, MANA_CREDITS_ENV="development", MANA_CREDITS_DATA_DIR=tmp_path
    ).model_dump(exclude={"WEB_APP_URL", "BASE_URL", "PORT"})
    server = LiveServer(create_app(Settings(**values)))  # PORT, BASE_URL, WEB_APP_URL as `make run` has them
    url = await server.start()
    settings = server.ctx.settings
    assert settings.BASE_URL == settings.WEB_APP_URL == f"http://localhost:{settings.PORT}"
    # Production keeps the web app's address unless told otherwise.
    assert Settings(**{**values, "MANA_CREDITS_ENV": "production"}).WEB_APP_URL == "https://mana.how"
    token = devkey.mint(
        devkey.load_or_create(settings.dev_key_path),
        user_id="dev-gifter",
        issuer=settings.jwt_issuers[0],
        audience="mana",
    )
    try:
        async with httpx.AsyncClient(base_url=url) as dev_client:
            granted = await dev_client.post(
                "/api/v1/internal/credits/grant",
                headers={"X-Service-Key": settings.MANA_SERVICE_KEY},
                json={"userId": "dev-gifter", "amount": 50, "reason": "test", "referenceId": "dev-gifter"},
            )
            assert granted.status_code == 200, granted.text
            created = await dev_client.post(
                "/api/v1/gifts", json={"totalCredits": 20}, headers={"Authorization": f"Bearer {token}"}
            )
            assert created.status_code == 201, created.text
            link = httpx.URL(created.json()["shortUrl"])
            assert f"{link.scheme}://{link.netloc.decode()}" == settings.BASE_URL
            page = await dev_client.get(link.path)  # the same path on this server: the public gift page
            assert page.status_code == 200
            assert "text/html" in page.headers["content-type"]
    finally:
        await server.stop()
