"""Routes under /api/v1/credits (JWT) and /api/v1/internal/credits (service key).

Holds (internal reserve|commit|refund-reservation). Commit: `amount` defaults to the whole hold; `0` spends
nothing and releases it (answer `transactionId: null`, reservation `refunded`); more than reserved is a 409
`amount_exceeds_reservation`. A second resolution of the same hold is a 409 `reservation_resolved`, an
unknown id 404, a malformed one 400. A commit after the expiry sweep released the hold still charges, from
the balance (402 when it is short).

Holds live `ttlSeconds` (at most 7 days), else what HOLD_TTL_DEFAULTS gives the calling app: mana-research
reserves when a job is submitted and commits when a later poll sees it finished, which can be days later.

With a per-app key a caller resolves only its own reservations (others look like 404); with the shared
key any caller may, as the reservation id is an unguessable UUID it was handed.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Response, Router, get, post
from litestar.params import Parameter, QueryParameter

from mana_credits import ledger
from mana_credits.accounts.endpoints import erase_account
from mana_credits.auth.dependencies import CALLER, USER
from mana_credits.auth.models import AuthUser, ServiceCaller
from mana_credits.context import AppContext
from mana_credits.credits import holds, repository, service
from mana_credits.credits.operations import OPERATIONS
from mana_credits.credits.schemas import (
    Commit,
    CommitResult,
    GrantResult,
    InternalGrant,
    InternalInit,
    InternalRefund,
    InternalUseCredits,
    Operation,
    RefundResult,
    ReleaseReservation,
    ReleaseResult,
    Reservation,
    Reserve,
    Usage,
    UseCredits,
    UseResult,
)
from mana_credits.db.pool import Conn
from mana_credits.kit import idempotency
from mana_credits.kit.errors import InsufficientCredits, NotFound
from mana_credits.kit.idempotency import Idempotent
from mana_credits.kit.openapi import raises
from mana_credits.kit.pagination import decode_cursor, encode_cursor
from mana_credits.kit.validation import UserIdParam, parse_uuid
from mana_credits.ledger.schemas import AccountSummary, Balance, BalanceRow, Transaction, TxType


async def _use(
    ctx: AppContext,
    idem: Idempotent,
    user_id: str,
    data: UseCredits,
    app_id: str,
    extra: dict[str, Any] | None = None,
) -> Response[UseResult]:
    idem = idem.with_body_key(data.idempotency_key)
    if idem.key is None:
        return Response(await service.keyless_use(ctx, user_id, data, app_id, extra))
    key = idem.key

    async def work(conn: Conn) -> UseResult:
        return await service.keyed_use(conn, user_id, data, app_id, extra, key)

    params = service.request_params(data, user_id)
    return await idem.run("credits.use", params, work, legacy_user=user_id, user_id=user_id)


# ---- personal (JWT) ----


@get("/balance")
async def my_balance(ctx: AppContext, user: AuthUser) -> Balance:
    return await ctx.balance_reads.submit(user.id)


@post("/use", status_code=200, responses=raises(InsufficientCredits))
async def use_credits(
    ctx: AppContext, user: AuthUser, data: UseCredits, idem: Idempotent
) -> Response[UseResult]:
    return await _use(ctx, idem, user.id, data, data.app_id)


@get("/transactions")
async def my_transactions(
    ctx: AppContext,
    user: AuthUser,
    limit: int = Parameter(default=50, ge=1, le=200),
    offset: int = Parameter(default=0, ge=0, le=1_000_000),
    cursor: str | None = Parameter(default=None, max_length=200),
    type: TxType | None = Parameter(default=None),  # named as the query parameter, for error details
    app_id: Annotated[str | None, QueryParameter(name="appId", max_length=100)] = None,
) -> Response[list[Transaction]]:
    after = decode_cursor(cursor) if cursor else None
    async with ctx.reader.acquire() as conn:
        rows = await repository.list_transactions(
            conn,
            user.id,
            limit=limit,
            offset=0 if after else offset,
            after=after,
            type_=type.value if type else None,
            app_id=app_id,
        )
    headers = {"X-Next-Cursor": encode_cursor(rows[-1].created_at, rows[-1].id)} if len(rows) == limit else {}
    return Response(rows, headers=headers)


@get("/operations")
async def operations() -> list[Operation]:
    return OPERATIONS


@get("/usage")
async def my_usage(ctx: AppContext, user: AuthUser, days: int = Parameter(default=30, ge=1, le=366)) -> Usage:
    """Credits used per day and app, for charts (the web dashboard draws it)."""
    async with ctx.pool.acquire() as conn:
        return await service.usage(conn, user.id, days=days, now=ctx.clock.now())


personal_routes = Router(
    path="/api/v1/credits",
    dependencies=USER,
    route_handlers=[my_balance, use_credits, my_transactions, my_usage],
    tags=["credits"],
)
public_routes = Router(path="/api/v1/credits", route_handlers=[operations], tags=["credits"])


# ---- internal (service key) ----


@get("/balance/{user_id:str}")
async def user_balance(ctx: AppContext, caller: ServiceCaller, user_id: UserIdParam) -> AccountSummary:
    async def query(conn: Conn) -> AccountSummary:
        return await ledger.account_summary(conn, user_id)

    return await ctx.standby_reads.read(ctx.pool, query)


@post("/use", status_code=200, responses=raises(InsufficientCredits))
async def internal_use(
    ctx: AppContext, caller: ServiceCaller, data: InternalUseCredits, idem: Idempotent
) -> Response[UseResult]:
    return await _use(ctx, idem, data.user_id, data, *service.booked_app(caller, data))


@post("/refund", status_code=200, responses=raises(NotFound))
async def internal_refund(
    caller: ServiceCaller, data: InternalRefund, idem: Idempotent
) -> Response[RefundResult]:
    idem = idem.with_body_key(data.idempotency_key)
    original = parse_uuid(data.transaction_id, "transactionId") if data.transaction_id else None
    app_id = caller.app_id if caller.per_app_key else (data.app_id or caller.app_or("system"))

    async def work(conn: Conn) -> RefundResult:
        return await service.refund(conn, data, original=original, app_id=app_id, idempotency_key=idem.key)

    return await idem.run("credits.refund", service.request_params(data), work, user_id=data.user_id)


@post("/grant", status_code=200)
async def internal_grant(
    ctx: AppContext, caller: ServiceCaller, data: InternalGrant
) -> Response[GrantResult]:
    """Exactly once per (userId, referenceId): a repeat answers `alreadyGranted: true` and moves nothing."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        result, replayed = await service.grant_once(
            conn,
            user_id=data.user_id,
            amount=data.amount,
            reason=data.reason,
            reference_id=data.reference_id,
            app_id=caller.app_or("community"),
            description=data.description or data.reason,
        )
    return Response(result, headers={idempotency.REPLAY_HEADER: "true"} if replayed else None)


@post("/init", status_code=200)
async def internal_init(ctx: AppContext, caller: ServiceCaller, data: InternalInit) -> BalanceRow:
    async with ctx.pool.acquire() as conn:
        return await ledger.init_balance(conn, data.user_id)


# ---- holds (service key) ----


def _owner(caller: ServiceCaller) -> str | None:
    return caller.app_id if caller.per_app_key else None


@post("/reserve", status_code=200, responses=raises(InsufficientCredits))
async def reserve(
    ctx: AppContext, caller: ServiceCaller, data: Reserve, idem: Idempotent
) -> Response[Reservation]:
    app_id = caller.app_or(holds.legacy_app_id(data.reason))

    async def work(conn: Conn) -> Reservation:
        held = await holds.reserve(
            conn,
            user_id=data.user_id,
            amount=data.amount,
            reason=data.reason,
            app_id=app_id,
            ttl_seconds=data.ttl_seconds or ctx.settings.hold_ttl_for(app_id),
            now=ctx.clock.now(),
        )
        return Reservation(
            reservation_id=held.reservation_id, balance=held.balance, expires_at=held.expires_at
        )

    return await idem.run("credits.reserve", data, work, user_id=data.user_id)


@post("/commit", status_code=200, responses=raises(InsufficientCredits, NotFound))
async def commit(
    ctx: AppContext, caller: ServiceCaller, data: Commit, idem: Idempotent
) -> Response[CommitResult]:
    reservation_id = parse_uuid(data.reservation_id, "reservationId")

    async def work(conn: Conn) -> CommitResult:
        done = await holds.commit(
            conn,
            reservation_id,
            amount=data.amount,
            description=data.description,
            owner=_owner(caller),
            now=ctx.clock.now(),
            idempotency_key=idem.key,
        )
        idem.user_id = done.user_id
        return CommitResult(success=True, transaction_id=done.transaction_id)

    return await idem.run("credits.commit", data, work)


@post("/refund-reservation", status_code=200, responses=raises(NotFound))
async def refund_reservation(
    ctx: AppContext, caller: ServiceCaller, data: ReleaseReservation, idem: Idempotent
) -> Response[ReleaseResult]:
    reservation_id = parse_uuid(data.reservation_id, "reservationId")

    async def work(conn: Conn) -> ReleaseResult:
        released = await holds.release(conn, reservation_id, owner=_owner(caller), now=ctx.clock.now())
        idem.user_id = released.user_id
        return ReleaseResult(success=True, balance=released.balance)

    return await idem.run("credits.refund-reservation", data, work)


internal_routes = Router(
    path="/api/v1/internal/credits",
    dependencies=CALLER,
    route_handlers=[
        user_balance,
        erase_account,
        internal_use,
        internal_refund,
        internal_grant,
        internal_init,
        reserve,
        commit,
        refund_reservation,
    ],
    tags=["internal"],
)

routes = [personal_routes, public_routes, internal_routes]
