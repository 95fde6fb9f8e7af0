"""Routes under /api/v1/gifts (public lookup, JWT for the rest) and /api/v1/internal/gifts (service key)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, delete, get, post
from litestar.params import Parameter

from mana_credits.auth.dependencies import CALLER, USER
from mana_credits.auth.models import AuthUser, ServiceCaller
from mana_credits.context import AppContext
from mana_credits.db.pool import Conn
from mana_credits.gifts import codes, ratelimit, repository, service, tasks
from mana_credits.gifts.errors import GiftExpired, GiftNotFound, GiftWrongRecipient, Refused
from mana_credits.gifts.schemas import (
    CancelResult,
    CreateGift,
    Gift,
    PendingResult,
    PublicGift,
    RedeemGift,
    RedeemPending,
    RedeemResult,
    Redemption,
    SweepResult,
)
from mana_credits.kit.errors import InsufficientCredits, TooManyRequests
from mana_credits.kit.idempotency import Idempotent
from mana_credits.kit.openapi import raises
from mana_credits.kit.validation import parse_uuid


def _ip(request: Request[Any, Any, Any]) -> str | None:
    return request.client.host if request.client else None


# ---- public ----


@get("/{code:str}", responses=raises(GiftNotFound, TooManyRequests))
async def lookup(
    ctx: AppContext,
    code: Annotated[str, Parameter(description="The gift code, as in the gift link.")],
    request: Request[Any, Any, Any],
) -> PublicGift:
    return await public_gift(ctx, code, ip=_ip(request))


async def public_gift(ctx: AppContext, code: str, *, ip: str | None) -> PublicGift:
    """What anyone with the code may see (this route and the public page /g/:code), rate-limited per
    client address: GiftNotFound counts as a failed guess, TooManyRequests when there were too many."""
    now = ctx.clock.now()
    ticket = await ratelimit.admit(ctx.pool, ratelimit.subjects(ip=ip), now)
    normalized = codes.normalize(code)
    async with ctx.pool.acquire() as conn:
        gift = await repository.get_by_code(conn, normalized) if normalized else None
    if gift is None:
        raise GiftNotFound()  # the attempt stays counted: it was a failed guess
    await ratelimit.forgive(ctx.pool, ticket)
    return PublicGift.from_row(gift, now=now)


public_routes = Router(path="/api/v1/gifts", route_handlers=[lookup], tags=["gifts"])


# ---- personal (JWT) ----


@post("/", status_code=201, responses=raises(InsufficientCredits, TooManyRequests))
async def create_gift(ctx: AppContext, user: AuthUser, data: CreateGift, idem: Idempotent) -> Response[Gift]:
    idem = idem.with_body_key(data.idempotency_key)
    await ratelimit.admit_write(ctx.pool, user.id, ctx.clock.now())

    async def work(conn: Conn) -> Gift:
        return await service.create(
            conn,
            user=user,
            data=data,
            base_url=ctx.settings.WEB_APP_URL,
            code_length=ctx.settings.GIFT_CODE_LENGTH,
            now=ctx.clock.now(),
            idempotency_key=idem.key,
        )

    params = msgspec.structs.replace(data, idempotency_key=None)
    return await idem.run("gifts.create", params, work, status=201)


@get("/me/created")
async def my_created(ctx: AppContext, user: AuthUser) -> list[Gift]:
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn:
        rows = await repository.list_created(conn, user.id)
    return [Gift.from_row(row, base_url=ctx.settings.WEB_APP_URL, now=now) for row in rows]


@get("/me/received")
async def my_received(ctx: AppContext, user: AuthUser) -> list[Redemption]:
    async with ctx.pool.acquire() as conn:
        return await repository.list_received(conn, user.id)


@post(
    "/{code:str}/redeem",
    status_code=200,
    responses=raises(GiftWrongRecipient, GiftNotFound, GiftExpired, TooManyRequests),
)
async def redeem_gift(
    ctx: AppContext,
    user: AuthUser,
    code: str,
    request: Request[Any, Any, Any],
    idem: Idempotent,
    data: RedeemGift | None = None,
) -> Response[RedeemResult]:
    body = data or RedeemGift()
    idem = idem.with_body_key(body.idempotency_key)
    ip = _ip(request)
    now = ctx.clock.now()
    normalized = codes.normalize(code)
    ticket = await ratelimit.admit(ctx.pool, ratelimit.subjects(ip=ip, user_id=user.id), now)

    async def work(conn: Conn) -> RedeemResult:
        return await service.redeem(
            conn,
            code=normalized,
            user=user,
            now=now,
            source_app_id=body.source_app_id,
            client_ip=ip,
            idempotency_key=idem.key,
        )

    try:
        response = await idem.run("gifts.redeem", [normalized, body.source_app_id], work)
    except GiftNotFound:
        raise  # the attempt stays counted: it was a failed guess
    except Refused as refused:
        # Forgiven for the address, counted for the user: each refusal writes a row, so they are bounded.
        await ratelimit.forgive(ctx.pool, ticket[:-1])
        async with ctx.pool.acquire() as conn:
            await service.record_refusal(conn, refused, user.id, body.source_app_id, ip)
        raise refused.error from None
    except Exception:
        await ratelimit.forgive(ctx.pool, ticket)
        raise
    await ratelimit.forgive(ctx.pool, ticket)
    return response


@delete("/{gift_id:str}", status_code=200, responses=raises(GiftNotFound, TooManyRequests))
async def cancel_gift(
    ctx: AppContext,
    user: AuthUser,
    gift_id: Annotated[
        str, Parameter(description="The gift's id (a UUID: `id` in POST /gifts and /gifts/me/created).")
    ],
    idem: Idempotent,
) -> Response[CancelResult]:
    parsed = parse_uuid(gift_id, "id")
    await ratelimit.admit_write(ctx.pool, user.id, ctx.clock.now())

    async def work(conn: Conn) -> CancelResult:
        return await service.cancel(conn, gift_id=parsed, user=user, now=ctx.clock.now())

    return await idem.run("gifts.cancel", [str(parsed)], work)


personal_routes = Router(
    path="/api/v1/gifts",
    dependencies=USER,
    route_handlers=[create_gift, my_created, my_received, redeem_gift, cancel_gift],
    tags=["gifts"],
)


# ---- internal (service key) ----

PENDING_SOURCE_APP = "auto-registration"


@post("/redeem-pending", status_code=200)
async def redeem_pending(
    ctx: AppContext, caller: ServiceCaller, data: RedeemPending, idem: Idempotent
) -> Response[PendingResult]:
    """mana-auth, at registration: every pending personalized gift for this email lands now.

    The redemptions record the source app the old service recorded for them, `auto-registration`.
    """

    async def work(conn: Conn) -> PendingResult:
        if data.email_verified is False:
            return PendingResult(redeemed=0, total_credits=0)
        return await service.redeem_pending(
            conn,
            user_id=data.user_id,
            email=data.email,
            now=ctx.clock.now(),
            source_app_id=PENDING_SOURCE_APP,
        )

    return await idem.run("gifts.redeem_pending", data, work)


@post("/expire", status_code=200)
async def expire(ctx: AppContext, caller: ServiceCaller) -> SweepResult:
    """Run the expiry sweep now (the scheduler runs it every few minutes anyway)."""
    return await tasks.sweep(ctx.pool, ctx.clock.now())


internal_routes = Router(
    path="/api/v1/internal/gifts",
    dependencies=CALLER,
    route_handlers=[redeem_pending, expire],
    tags=["internal"],
)

routes = [public_routes, personal_routes, internal_routes]
