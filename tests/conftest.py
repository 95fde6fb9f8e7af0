"""One real PostgreSQL per test session (embedded, or TEST_DATABASE_URL), migrated once; the service runs
on a loopback port under uvicorn in the test event loop, so tests talk real HTTP and share its clock.
Tests isolate themselves with fresh user ids; a test that needs a whole database gets one from the
migrated template (`fresh_database`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import asyncpg
import httpx
import pytest
import uvicorn
from litestar import Litestar

from mana_credits.app import create_app
from mana_credits.config import Settings
from mana_credits.context import AppContext
from mana_credits.db.embedded import EmbeddedPostgres, database_url
from mana_credits.db.migrate import upgrade_async
from mana_credits.kit.clock import Clock
from tests.support import APP_KEYS, SERVICE_KEY, Api, JwksServer

TEMPLATE_DB = "mana_credits_template"
TEST_DB = "mana_credits_test"


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    # Our own temp folder: pytest prunes old basetemp folders, which could hit a parallel session's server.
    folder = Path(tempfile.mkdtemp(prefix="mana-credits-test-"))
    server = EmbeddedPostgres(folder / "pg")
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
async def template_url(pg_admin_url: str) -> str:
    """A migrated database nobody connects to, copied for each database the tests need."""
    conn = await asyncpg.connect(pg_admin_url)
    try:
        for name in (TEST_DB, TEMPLATE_DB):
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    finally:
        await conn.close()
    url = database_url(pg_admin_url, TEMPLATE_DB)
    await upgrade_async(url)
    return url


async def _copy_template(admin_url: str, name: str) -> str:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    finally:
        await conn.close()
    return database_url(admin_url, name)


@pytest.fixture(scope="session")
async def database_url_(pg_admin_url: str, template_url: str) -> str:
    return await _copy_template(pg_admin_url, TEST_DB)


@pytest.fixture
async def fresh_database(pg_admin_url: str, template_url: str) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Factory: a new, empty, migrated database (for tests that act on every row, e.g. sweeps)."""
    created: list[str] = []

    async def make() -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        created.append(name)
        return await _copy_template(pg_admin_url, name)

    yield make
    conn = await asyncpg.connect(pg_admin_url)
    try:
        for name in created:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def jwks() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.close()


def make_settings(database: str, jwks: JwksServer, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "DATABASE_URL": database,
        "MANA_AUTH_URL": jwks.url,
        "MANA_SERVICE_KEY": SERVICE_KEY,
        "MANA_SERVICE_KEYS": ",".join(f"{app}:{key}" for app, key in APP_KEYS.items()),
        "MANA_CREDITS_ENV": "production",
        "MANA_CREDITS_SCHEDULER": False,
        "BASE_URL": "https://credits.mana.test",
        "WEB_APP_URL": "https://mana.test",
        "DB_POOL_SIZE": 10,
        "METRICS_APPS": "metrics-app,metrics-chat,metrics-burst",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


class Served:
    """Any ASGI app served by uvicorn on 127.0.0.1 inside the running event loop."""

    def __init__(self, app: Any, *, lifespan: bool = True) -> None:
        # Keep-alive longer than any pause between tests on a loaded machine: a pooled client connection the
        # server closes just as the client reuses it would fail a test with a ReadError.
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, lifespan="on" if lifespan else "off", log_level="warning",
            timeout_keep_alive=300,
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> str:
        self._task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task


class LiveServer(Served):
    """The service itself, with its lifespan (pool, jobs); `ctx` once started."""

    def __init__(self, app: Litestar) -> None:
        super().__init__(app)
        self.app = app

    @property
    def ctx(self) -> AppContext:
        ctx: AppContext = self.app.state.ctx
        return ctx


@pytest.fixture(scope="session")
def clock() -> Clock:
    return Clock()


@pytest.fixture(autouse=True)
def _reset_clock(clock: Clock) -> Iterator[None]:
    yield
    clock.offset = clock.offset * 0


@pytest.fixture(scope="session")
def settings(database_url_: str, jwks: JwksServer) -> Settings:
    return make_settings(database_url_, jwks)


@pytest.fixture(scope="session")
async def live(settings: Settings, clock: Clock) -> AsyncIterator[tuple[LiveServer, str]]:
    server = LiveServer(create_app(settings, clock=clock))
    url = await server.start()
    yield server, url
    await server.stop()


@pytest.fixture(scope="session")
async def no_group_commit(settings: Settings, clock: Clock) -> AsyncIterator[str]:
    """A second instance on the same database with the group commit off: keyless debits take the route's
    one-statement path, never the group commit or its lane (kit.lane)."""
    server = LiveServer(create_app(Settings(**{**settings.model_dump(), "GROUP_COMMIT": False}), clock=clock))
    yield await server.start()
    await server.stop()


@pytest.fixture(scope="session")
def base_url(live: tuple[LiveServer, str]) -> str:
    return live[1]


@pytest.fixture(scope="session")
def ctx(live: tuple[LiveServer, str]) -> AppContext:
    return live[0].ctx


@pytest.fixture(scope="session")
async def client(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
        yield http


@pytest.fixture(scope="session")
def api(client: httpx.AsyncClient, jwks: JwksServer) -> Api:
    return Api(client, jwks)


@pytest.fixture
async def db(ctx: AppContext) -> AsyncIterator[asyncpg.Connection]:
    async with ctx.pool.acquire() as conn:
        # The pool hands out a proxy that forwards every call to its Connection; tests take it as one.
        yield cast(asyncpg.Connection, conn)
