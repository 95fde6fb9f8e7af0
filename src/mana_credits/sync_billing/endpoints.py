"""Routes /api/v1/sync (JWT), /api/v1/internal/sync (service key), /api/v1/admin/sync (admin JWT)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, Router, delete, get, post
from litestar.types import ControllerRouterHandler

from mana_credits.auth.dependencies import ADMIN, CALLER, USER
from mana_credits.auth.models import AuthUser, ServiceCaller
from mana_credits.context import AppContext
from mana_credits.kit import idempotency
from mana_credits.kit.validation import UserIdParam
from mana_credits.sync_billing import service
from mana_credits.sync_billing.schemas import Activate, AdminSyncStatus, ChangeInterval, SyncStatus


async def _write(
    ctx: AppContext, request: Request[Any, Any, Any], user: AuthUser, operation: str, params: Any,
    body_key: str | None, act: Any,
) -> Response[Any]:  # fmt: skip
    async def work(conn: Any) -> tuple[int, Any]:
        return 200, await act(conn)

    return await idempotency.run_idempotent(
        ctx.pool, scope=f"user:{user.id}", key=idempotency.key_from(request, body_key),
        operation=operation, params=params, work=work,
    )  # fmt: skip


# ---- personal (JWT) ----


@get("/status")
async def my_status(ctx: AppContext, user: AuthUser) -> SyncStatus:
    async with ctx.pool.acquire() as conn:
        return await service.status(conn, user.id, ctx.clock.now())


@post("/activate", status_code=200)
async def activate(
    ctx: AppContext, user: AuthUser, request: Request[Any, Any, Any], data: Activate | None = None
) -> Response[Any]:
    data = data or Activate()

    async def act(conn: Any) -> Any:
        return await service.activate(
            conn, user.id, interval=data.interval, email=user.email, now=ctx.clock.now()
        )

    params = msgspec.structs.replace(data, idempotency_key=None)
    return await _write(ctx, request, user, "sync.activate", params, data.idempotency_key, act)


@post("/deactivate", status_code=200)
async def deactivate(ctx: AppContext, user: AuthUser, request: Request[Any, Any, Any]) -> Response[Any]:
    async def act(conn: Any) -> Any:
        return await service.deactivate(conn, user.id, now=ctx.clock.now())

    return await _write(ctx, request, user, "sync.deactivate", None, None, act)


@post("/change-interval", status_code=200)
async def change_interval(
    ctx: AppContext, user: AuthUser, data: ChangeInterval, request: Request[Any, Any, Any]
) -> Response[Any]:
    async def act(conn: Any) -> Any:
        return await service.change_interval(conn, user.id, data.interval, now=ctx.clock.now())

    params = msgspec.structs.replace(data, idempotency_key=None)
    return await _write(ctx, request, user, "sync.change-interval", params, data.idempotency_key, act)


personal_routes = Router(
    path="/api/v1/sync",
    dependencies=USER,
    route_handlers=[my_status, activate, deactivate, change_interval],
    tags=["sync"],
)


# ---- internal (service key) ----


@get("/status/{user_id:str}")
async def user_status(ctx: AppContext, caller: ServiceCaller, user_id: UserIdParam) -> SyncStatus:
    async with ctx.pool.acquire() as conn:
        return await service.status(conn, user_id, ctx.clock.now())


@post("/charge-recurring", status_code=200)
async def charge_recurring(ctx: AppContext, caller: ServiceCaller) -> dict[str, int]:
    result = await service.charge_recurring(
        ctx.pool, ctx.clock.now(), resume=service.resume_url(ctx.settings.WEB_APP_URL)
    )
    return msgspec.structs.asdict(result)


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
        return await service.admin_status(conn, user_id, ctx.clock.now())


@post("/{user_id:str}/gift", status_code=200)
async def gift(
    ctx: AppContext, admin: AuthUser, user_id: UserIdParam, request: Request[Any, Any, Any]
) -> Response[Any]:
    async def act(conn: Any) -> Any:
        return await service.gift(conn, user_id, admin_id=admin.id, now=ctx.clock.now())

    return await _write(ctx, request, admin, "sync.gift", user_id, None, act)


@delete("/{user_id:str}/gift", status_code=200)
async def revoke_gift(
    ctx: AppContext, admin: AuthUser, user_id: UserIdParam, request: Request[Any, Any, Any]
) -> Response[Any]:
    async def act(conn: Any) -> Any:
        return await service.revoke_gift(conn, user_id, now=ctx.clock.now())

    return await _write(ctx, request, admin, "sync.revoke-gift", user_id, None, act)


admin_routes = Router(
    path="/api/v1/admin/sync",
    dependencies=ADMIN,
    route_handlers=[admin_status, gift, revoke_gift],
    tags=["admin"],
)

routes: list[ControllerRouterHandler] = [personal_routes, internal_routes, admin_routes]
