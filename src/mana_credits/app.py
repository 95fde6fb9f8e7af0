"""create_app(settings): routes, middleware, error handlers, lifespan (pool, JWKS client, jobs)."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin

from mana_credits import health
from mana_credits.auth import devkey
from mana_credits.auth.dependencies import CTX
from mana_credits.auth.jwt import JwtVerifier
from mana_credits.books import endpoints as books_endpoints
from mana_credits.books import tasks as books_tasks
from mana_credits.config import Settings
from mana_credits.context import AppContext
from mana_credits.credits import endpoints as credits_endpoints
from mana_credits.credits import lanes as credits_lanes
from mana_credits.credits import service as credits_service
from mana_credits.credits import tasks as credits_tasks
from mana_credits.db.pool import create_pool
from mana_credits.gifts import endpoints as gifts_endpoints
from mana_credits.gifts import tasks as gifts_tasks
from mana_credits.kit import metrics, money_metrics
from mana_credits.kit.clock import Clock
from mana_credits.kit.edge import edge_middleware
from mana_credits.kit.errors import EXCEPTION_HANDLERS
from mana_credits.kit.headers import cors_for_browsers
from mana_credits.kit.jobs import Job, JobRunner
from mana_credits.kit.standby import StandbyReads
from mana_credits.kit.validation import strict_json_body
from mana_credits.ledger import tasks as ledger_tasks
from mana_credits.ledger.fraction_commit import FractionCommit
from mana_credits.ledger.group import GroupCommit
from mana_credits.notifications import tasks as notification_tasks
from mana_credits.payments import endpoints as payments_endpoints
from mana_credits.payments import tasks as payments_tasks
from mana_credits.sync_billing import endpoints as sync_endpoints
from mana_credits.sync_billing import tasks as sync_tasks
from mana_credits.web import routes as web_routes

log = logging.getLogger("mana_credits")

MAX_BODY_BYTES = 64 * 1024
# Lifespan shutdown budget; the server kills a worker still alive after server.WORKER_KILL_SECONDS.
SHUTDOWN_SECONDS = 10.0

JOB_SOURCES = [
    books_tasks,
    ledger_tasks,
    credits_tasks,
    gifts_tasks,
    payments_tasks,
    sync_tasks,
    notification_tasks,
]


async def build_context(settings: Settings, clock: Clock | None = None) -> AppContext:
    if not settings.DATABASE_URL:
        raise RuntimeError("DATABASE_URL is not set (the CLI starts the embedded PostgreSQL and sets it)")
    money_metrics.know_apps([*settings.service_keys.values(), *settings.METRICS_APPS.split(",")])
    http = httpx.AsyncClient(timeout=httpx.Timeout(10.0))
    extra_keys = (
        [devkey.public_jwk(devkey.load_or_create(settings.dev_key_path))] if settings.is_development else []
    )
    verifier = JwtVerifier(
        settings.jwks_url,
        issuers=settings.jwt_issuers,
        audience=settings.JWT_AUDIENCE,
        http=http,
        extra_keys=extra_keys,
    )
    pool = await create_pool(settings.DATABASE_URL, size=settings.DB_POOL_SIZE)
    read_pool = (
        await create_pool(settings.DATABASE_READ_URL, size=settings.DB_POOL_SIZE)
        if settings.DATABASE_READ_URL
        else None
    )
    # No connection at start: a standby may be down while the primary serves.
    standby = await create_pool(settings.standby_url, size=2, min_size=0) if settings.standby_url else None
    standby_reads = StandbyReads(standby, settings.STANDBY_READ_STALENESS)
    return AppContext(
        settings=settings,
        pool=pool,
        clock=clock or Clock(),
        http=http,
        verifier=verifier,
        standby_reads=standby_reads,
        balance_reads=credits_service.balance_reads(read_pool or pool, standby_reads),
        read_pool=read_pool,
        group_commit=GroupCommit(pool) if settings.GROUP_COMMIT else None,
        fraction_commit=FractionCommit(pool) if settings.GROUP_COMMIT else None,
    )


def settle_heap() -> None:
    """After start-up: the modules, routes and pool live as long as the process, so take them out of the
    garbage collector's scans, and collect young objects less often (requests allocate a lot, briefly)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


async def _shut_down(runner: JobRunner, ctx: AppContext) -> None:
    """Stop jobs and close connections within SHUTDOWN_SECONDS: a hung database must not keep the
    process from exiting (the pool would wait forever for connections stuck in a query)."""
    try:
        await asyncio.wait_for(runner.stop(), SHUTDOWN_SECONDS / 2)
    except TimeoutError:
        log.warning("jobs did not stop within %.0fs; leaving them", SHUTDOWN_SECONDS / 2)
    try:
        await asyncio.wait_for(ctx.close(), SHUTDOWN_SECONDS / 2)
    except TimeoutError:
        log.warning("database connections did not close within %.0fs; terminating them", SHUTDOWN_SECONDS / 2)
        ctx.pool.terminate()


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> Litestar:
    settings = settings or Settings()
    settings.check_safe_to_start()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        ctx = await build_context(settings, clock)
        app.state.ctx = ctx
        runner = JobRunner([job for source in JOB_SOURCES for job in source.jobs(ctx)])
        if settings.MANA_CREDITS_SCHEDULER:
            runner.start()
        # Each process adds its tallied request metrics to the shared ones, scheduler or not.
        flusher = JobRunner([Job("metrics.flush", metrics.FLUSH_SECONDS, metrics.flushed)])
        flusher.start()
        settle_heap()
        try:
            yield
        finally:
            await flusher.stop()
            metrics.flush()  # the requests of the last second
            await _shut_down(runner, ctx)

    app = Litestar(
        route_handlers=[
            *health.routes,
            *credits_endpoints.routes,
            *payments_endpoints.routes,
            *gifts_endpoints.routes,
            *sync_endpoints.routes,
            *books_endpoints.routes,
            *web_routes(settings),
            metrics.Controller,
        ],
        dependencies=CTX,
        before_request=strict_json_body,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        middleware=[edge_middleware],
        # Read no further than this, answering 413 before parsing (the Stripe webhook allows more).
        request_max_body_size=MAX_BODY_BYTES,
        cors_config=CORSConfig(
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_headers=["*"],
            expose_headers=["X-Next-Cursor", "Idempotent-Replayed", "X-Request-Id", "Retry-After"],
        ),
        openapi_config=OpenAPIConfig(
            title="mana-credits",
            version="1.0.0",
            path="/docs",
            render_plugins=[ScalarRenderPlugin(path="/"), health.PublishedJson()],
        ),
        debug=False,
    )
    cors_for_browsers(app)
    credits_lanes.answer_ahead(app)
    return app
