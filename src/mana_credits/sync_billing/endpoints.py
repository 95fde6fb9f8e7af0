"""Routes /api/v1/sync (JWT), /api/v1/internal/sync (service key), /api/v1/admin/sync (admin JWT)."""

from __future__ import annotations

import msgspec
from litestar import Response, Router, delete, get, post
from litestar.types import ControllerRouterHandler

from mana_credits.auth.dependencies import ADMIN, CALLER, USER
from mana_credits.auth.models import AuthUser, ServiceCaller
from mana_credits.context import AppContext
from mana_credits.db.pool import Conn
from mana_credits.kit.errors import InsufficientCredits
from mana_credits.kit.idempotency import Idempotent
from mana_credits.kit.openapi import raises
from mana_credits.kit.validation import UserIdParam
from mana_credits.sync_billing import service, status
from mana_credits.sync_billing.schemas import (
    Activate,
    ActivateResult,
    AdminSyncChange,
    AdminSyncStatus,
    ChangeInterval,
    ChangeIntervalResult,
    DeactivateResult,
    RenewalResult,
    SyncStatus,
)

# ---- personal (JWT) ----


@get("/status")
async def my_status(ctx: AppContext, user: AuthUser) -> SyncStatus:
    async with ctx.pool.acquire() as conn:
        return status.as_the_user_sees_it(await status.status(conn, user.id, ctx.clock.now()))


@post("/activate", status_code=200, responses=raises(InsufficientCredits))
async def activate(
    ctx: AppContext, user: AuthUser, idem: Idempotent, data: Activate | None = None
) -> Response[ActivateResult]:
    data = data or Activate()
    idem = idem.with_body_key(data.idempotency_key)

    async def work(conn: Conn) -> ActivateResult:
        return await service.activate(
            conn, user.id, interval=data.interval, email=user.email, now=ctx.clock.now()
        )

    return await idem.run("sync.activate", msgspec.structs.replace(data, idempotency_key=None), work)


@post("/deactivate", status_code=200)
async def deactivate(ctx: AppContext, user: AuthUser, idem: Idempotent) -> Response[DeactivateResult]:
    async def work(conn: Conn) -> DeactivateResult:
        return await service.deactivate(conn, user.id, now=ctx.clock.now())

    return await idem.run("sync.deactivate", None, work)


@post("/change-interval", status_code=200)
async def change_interval(
    ctx: AppContext, user: AuthUser, data: ChangeInterval, idem: Idempotent
) -> Response[ChangeIntervalResult]:
    idem = idem.with_body_key(data.idempotency_key)

    async def work(conn: Conn) -> ChangeIntervalResult:
        return await service.change_interval(conn, user.id, data.interval, now=ctx.clock.now())

    params = msgspec.structs.replace(data, idempotency_key=None)
    return await idem.run("sync.change-interval", params, work)


personal_routes = Router(
    path="/api/v1/sync",
    dependencies=USER,
    route_handlers=[my_status, activate, deactivate, change_interval],
    tags=["sync"],
)


# ---- internal (service key) ----


@get("/status/{user_id:str}")
async def user_status(ctx: AppContext, caller: ServiceCaller, user_id: UserIdParam) -> SyncStatus:
    """mana-sync's gate, for every user every few minutes: answered by a standby during a failover."""

    async def query(conn: Conn) -> SyncStatus:
        return await status.status(conn, user_id, ctx.clock.now())

    return await ctx.standby_reads.read(ctx.pool, query)


@post("/charge-recurring", status_code=200)
async def charge_recurring(ctx: AppContext, caller: ServiceCaller) -> RenewalResult:
    resume = service.resume_url(ctx.settings.WEB_APP_URL)
    return await service.charge_recurring(ctx.pool, ctx.clock.now(), resume=resume)


internal_routes = Router(
    path="/api/v1/internal/sync",
    dependencies=CALLER,
    route_handlers=[user_status, charge_recurring],
    tags=["internal"],
)


# ---- admin (JWT with role admin) ----


@get("/{user_id:str}")
async def admin_status(ctx: AppContext, admin: AuthUser, user_id: UserIdParam) -> AdminSyncStatus:
    async with ctx.pool.acquire() as conn:
        return await status.admin_status(conn, user_id, ctx.clock.now())


@post("/{user_id:str}/gift", status_code=200)
async def gift(
    ctx: AppContext, admin: AuthUser, user_id: UserIdParam, idem: Idempotent
) -> Response[AdminSyncChange]:
    async def work(conn: Conn) -> AdminSyncChange:
        return await service.gift(conn, user_id, admin_id=admin.id, now=ctx.clock.now())

    return await idem.run("sync.gift", user_id, work)


@delete("/{user_id:str}/gift", status_code=200)
async def revoke_gift(
    ctx: AppContext, admin: AuthUser, user_id: UserIdParam, idem: Idempotent
) -> Response[AdminSyncChange]:
    async def work(conn: Conn) -> AdminSyncChange:
        return await service.revoke_gift(conn, user_id, now=ctx.clock.now())

    return await idem.run("sync.revoke-gift", user_id, work)


admin_routes = Router(
    path="/api/v1/admin/sync",
    dependencies=ADMIN,
    route_handlers=[admin_status, gift, revoke_gift],
    tags=["admin"],
)

routes: list[ControllerRouterHandler] = [personal_routes, internal_routes, admin_routes]
