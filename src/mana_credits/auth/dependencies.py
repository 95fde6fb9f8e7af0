"""Typed dependencies: a handler's signature says who may call it (`user`, `admin`, `caller`)."""

from __future__ import annotations

import hmac
import re
from typing import Any

from litestar import Request
from litestar.di import Provide

from mana_credits.auth.models import UNNAMED_APP, AuthUser, ServiceCaller
from mana_credits.context import AppContext
from mana_credits.kit.errors import Forbidden, Unauthorized, ValidationFailed
from mana_credits.kit.idempotency import Idempotent

# The calling app as named by X-App-Id (shared key): it scopes idempotency keys and lands in the ledger.
APP_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")


def provide_ctx(request: Request[Any, Any, Any]) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


# `user` and `caller` take `ctx` as a dependency although they could read it from the app state: Litestar
# resolves independent dependencies concurrently in a task group per request, chained ones in plain order.
async def provide_user(ctx: AppContext, request: Request[Any, Any, Any]) -> AuthUser:
    token = bearer_token(request.headers.get("authorization", ""))
    if token is None:
        raise Unauthorized("Missing bearer token")
    return await ctx.verifier.verify(token)


def bearer_token(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def provide_admin(ctx: AppContext, request: Request[Any, Any, Any]) -> AuthUser:
    user = await provide_user(ctx, request)
    if not user.is_admin:
        raise Forbidden("Admin role required")
    return user


def provide_caller(ctx: AppContext, request: Request[Any, Any, Any]) -> ServiceCaller:
    presented = request.headers.get("x-service-key")
    if not presented:
        raise Unauthorized("Missing X-Service-Key")
    return identify_service(presented, request.headers.get("x-app-id"), ctx)


def identify_service(presented: str, app_header: str | None, ctx: AppContext) -> ServiceCaller:
    """Compare in constant time against every configured key (no early exit on a match)."""
    settings = ctx.settings
    given = presented.encode()
    matched_app: str | None = None
    for key, app in settings.service_keys.items():
        if hmac.compare_digest(given, key.encode()):
            matched_app = app
    shared = hmac.compare_digest(given, settings.MANA_SERVICE_KEY.encode())
    if matched_app is not None:
        return ServiceCaller(app_id=matched_app, per_app_key=True)
    if shared:
        app_id = (app_header or "").strip() or UNNAMED_APP
        if not APP_ID.fullmatch(app_id):
            raise ValidationFailed(
                "X-App-Id must be 1-100 letters, digits, '.', '_', ':' or '-'",
                details={"fields": [{"field": "X-App-Id", "source": "header"}]},
            )
        return ServiceCaller(app_id=app_id, per_app_key=False)
    raise Unauthorized("Invalid service key")


# `idem`: an idempotent write keyed per caller (kit.idempotency); an admin's writes are keyed as the user's.
def user_writes(ctx: AppContext, user: AuthUser, request: Request[Any, Any, Any]) -> Idempotent:
    return Idempotent(ctx.pool, f"user:{user.id}", request)


def admin_writes(ctx: AppContext, admin: AuthUser, request: Request[Any, Any, Any]) -> Idempotent:
    return Idempotent(ctx.pool, f"user:{admin.id}", request)


def service_writes(ctx: AppContext, caller: ServiceCaller, request: Request[Any, Any, Any]) -> Idempotent:
    return Idempotent(ctx.pool, f"service:{caller.app_id}", request)


CTX = {"ctx": Provide(provide_ctx, sync_to_thread=False)}
USER = {"user": Provide(provide_user), "idem": Provide(user_writes, sync_to_thread=False)}
ADMIN = {"admin": Provide(provide_admin), "idem": Provide(admin_writes, sync_to_thread=False)}
CALLER = {
    "caller": Provide(provide_caller, sync_to_thread=False),
    "idem": Provide(service_writes, sync_to_thread=False),
}
