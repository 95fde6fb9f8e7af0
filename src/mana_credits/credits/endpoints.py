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

import msgspec
from litestar import Litestar, Response, Router, get, post
from litestar.params import Parameter, QueryParameter
from litestar.types import Scope

from mana_credits import ledger
from mana_credits.accounts.endpoints import erase_account
from mana_credits.auth.dependencies import CALLER, USER, bearer_token, identify_service
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
from mana_credits.kit import idempotency, lane
from mana_credits.kit.batching import Batcher
from mana_credits.kit.errors import CreditsError
from mana_credits.kit.idempotency import Idempotent
from mana_credits.kit.pagination import decode_cursor, encode_cursor
from mana_credits.kit.validation import MALFORMED, UserIdParam, check_text, field_names, parse_uuid
from mana_credits.ledger.group import GroupCommit, UsageDebit, usage_debit
from mana_credits.ledger.schemas import AccountSummary, Balance, BalanceRow, Transaction, TxType

_GROUP_COMMIT = "ledger.group_commit"
_BALANCE_READS = "ledger.balance_reads"


def _params(data: msgspec.Struct, *extra: Any) -> Any:
    """What identifies a request for idempotency: the body without its key."""
    return [msgspec.structs.replace(data, idempotency_key=None), *extra]


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
        return Response(await keyless_use(ctx, user_id, data, app_id, extra))
    metadata = _metadata(data, extra)

    async def work(conn: Conn) -> UseResult:
        entry = await ledger.debit(
            conn,
            user_id,
            data.amount,
            type=TxType.USAGE,
            app_id=app_id,
            description=data.description,
            metadata=metadata,
            idempotency_key=idem.key,
            record_usage=True,
        )
        return UseResult.of(entry)

    params = _params(data, user_id)
    return await idem.run("credits.use", params, work, legacy_user=user_id, user_id=user_id)


def _metadata(data: UseCredits, extra: dict[str, Any] | None) -> dict[str, Any] | None:
    return {**(data.metadata or {}), **(extra or {})} or None


async def keyless_use(
    ctx: AppContext, user_id: str, data: UseCredits, app_id: str, extra: dict[str, Any] | None
) -> UseResult:
    """A keyless debit through the process's group commit (ledger.group), or alone with it off; either
    tells the truth after a lost connection (ledger.outcome). InsufficientCredits when not covered."""
    item = UsageDebit(user_id, data.amount, app_id, data.description, _metadata(data, extra))
    if not ctx.settings.GROUP_COMMIT:
        return UseResult.of(await usage_debit(ctx.pool, item))
    found = ctx.extras.get(_GROUP_COMMIT)
    if found is None:
        found = ctx.extras[_GROUP_COMMIT] = GroupCommit(ctx.pool)
    assert isinstance(found, GroupCommit)
    return UseResult.of(await found.debit(item))


def booked_app(caller: ServiceCaller, data: InternalUseCredits) -> tuple[str, dict[str, Any] | None]:
    """The app a service's debit is booked to, and the caller in its metadata when that is another app."""
    # A per-app key names the app authoritatively; with the shared key the body's appId is all we have.
    app_id = caller.app_id if caller.per_app_key else data.app_id
    return app_id, {"calledBy": caller.app_id} if caller.app_id != app_id else None


async def balance_of(ctx: AppContext, user_id: str) -> Balance:
    """A person's own balance. From the read replica when configured: a balance shown a moment late is
    fine for a person; the internal balance, which apps check before charging, stays on the primary.
    Concurrent reads share one query (kit.batching)."""
    found = ctx.extras.get(_BALANCE_READS)
    if found is None:

        async def read(user_ids: list[str]) -> list[Balance | Exception]:
            async def query(conn: Conn) -> list[Balance | Exception]:
                return [*await ledger.get_balances(conn, user_ids)]

            return await ctx.standby_reads.read(ctx.reader, query)

        found = ctx.extras[_BALANCE_READS] = Batcher(read)
    assert isinstance(found, Batcher)
    balance: Balance = await found.submit(user_id)
    return balance


# ---- personal (JWT) ----


@get("/balance")
async def my_balance(ctx: AppContext, user: AuthUser) -> Balance:
    return await balance_of(ctx, user.id)


@post("/use", status_code=200)
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


@post("/use", status_code=200)
async def internal_use(
    ctx: AppContext, caller: ServiceCaller, data: InternalUseCredits, idem: Idempotent
) -> Response[UseResult]:
    return await _use(ctx, idem, data.user_id, data, *booked_app(caller, data))


@post("/refund", status_code=200)
async def internal_refund(
    caller: ServiceCaller, data: InternalRefund, idem: Idempotent
) -> Response[RefundResult]:
    idem = idem.with_body_key(data.idempotency_key)
    original = parse_uuid(data.transaction_id, "transactionId") if data.transaction_id else None
    app_id = caller.app_id if caller.per_app_key else (data.app_id or caller.app_or("system"))

    async def work(conn: Conn) -> RefundResult:
        return await service.refund(conn, data, original=original, app_id=app_id, idempotency_key=idem.key)

    return await idem.run("credits.refund", _params(data), work, user_id=data.user_id)


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


@post("/reserve", status_code=200)
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


@post("/commit", status_code=200)
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


@post("/refund-reservation", status_code=200)
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

# ---- answered ahead of the framework (kit.lane) ----

_DECODE_INTERNAL_USE = msgspec.json.Decoder(InternalUseCredits).decode
_INTERNAL_USE_NAMES = field_names(InternalUseCredits)


def _take_keyless_debit(scope: Scope, headers: lane.Headers, body: bytes) -> lane.Work | None:
    """The work of a service's keyless debit when the route would send it through the group commit
    (answering 200 or 402); None for anything else, which the route answers: a header key (its own
    transaction), and the 400s and 401s, worded as everywhere."""
    ctx: AppContext = scope["app"].state.ctx
    key, app_header = headers.get(b"x-service-key"), headers.get(b"x-app-id")
    json = headers.get(b"content-type") == b"application/json"
    if key is None or not json or b"idempotency-key" in headers or not ctx.settings.GROUP_COMMIT:
        return None
    try:
        data = _DECODE_INTERNAL_USE(body)
        app_id = None if app_header is None else app_header.decode("latin-1")
        caller = identify_service(key.decode("latin-1"), app_id, ctx)
        check_text(body, _INTERNAL_USE_NAMES)
    except (*MALFORMED, CreditsError):
        return None
    if data.idempotency_key is not None:
        return None
    return lambda: keyless_use(ctx, data.user_id, data, *booked_app(caller, data))


def _take_balance(scope: Scope, headers: lane.Headers, body: bytes) -> lane.Work | None:
    """The work of `GET /credits/balance` with a bearer token (apps and servers). The token is checked in
    the work: a bad one is the route's 401 all the same."""
    token = None if body else bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
    if token is None:
        return None
    ctx: AppContext = scope["app"].state.ctx

    async def work() -> Balance:
        user = await ctx.verifier.verify(token)
        return await balance_of(ctx, user.id)

    return work


# The commonest requests of the two hottest routes, by method and path.
LANES: dict[tuple[str, str], lane.Take] = {
    ("POST", "/api/v1/internal/credits/use"): _take_keyless_debit,
    ("GET", "/api/v1/credits/balance"): _take_balance,
}


def lanes(app: Litestar) -> None:
    """LANES answered ahead of the framework."""
    lane.answer_ahead(app, LANES)


routes = [personal_routes, public_routes, internal_routes]
