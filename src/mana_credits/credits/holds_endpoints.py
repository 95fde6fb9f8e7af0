"""Routes /api/v1/internal/credits/reserve|commit|refund-reservation (service key).

Commit: `amount` defaults to the whole hold; `0` spends nothing and releases it (answer `transactionId:
null`, reservation `refunded`); more than reserved is a 409 `amount_exceeds_reservation`. A second
resolution of the same hold is a 409 `reservation_resolved`, an unknown id 404, a malformed one 400.
A commit after the expiry sweep released the hold still charges, from the balance (402 when it is short).

Holds live 24 hours unless `ttlSeconds` says otherwise: mana-research reserves when a job is submitted and
commits when a later poll sees it finished, which can be hours later.

With a per-app key a caller resolves only its own reservations (others look like 404); with the shared
key any caller may, as the reservation id is an unguessable UUID it was handed.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Response, Router, post
from litestar.types import ControllerRouterHandler

from mana_credits.auth.dependencies import CALLER
from mana_credits.auth.models import ServiceCaller
from mana_credits.context import AppContext
from mana_credits.credits import holds
from mana_credits.credits.schemas import Amount, CommitResult, ReleaseResult, Reservation, Text
from mana_credits.db.pool import Conn
from mana_credits.kit.idempotency import Idempotent
from mana_credits.kit.validation import UserId, parse_uuid

DEFAULT_TTL_SECONDS = 86_400
MAX_TTL_SECONDS = 7 * 86_400

Ttl = Annotated[int, msgspec.Meta(ge=1, le=MAX_TTL_SECONDS)]
# 0 is allowed on commit: nothing is spent and the whole hold is released.
CommitAmount = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
ReservationId = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class Reserve(msgspec.Struct, rename="camel", kw_only=True):
    user_id: UserId
    amount: Amount
    reason: Text
    ttl_seconds: Ttl = DEFAULT_TTL_SECONDS


class Commit(msgspec.Struct, rename="camel", kw_only=True):
    reservation_id: ReservationId
    amount: CommitAmount | None = None
    description: Text | None = None


class ReleaseReservation(msgspec.Struct, rename="camel", kw_only=True):
    reservation_id: ReservationId


def _owner(caller: ServiceCaller) -> str | None:
    return caller.app_id if caller.per_app_key else None


@post("/reserve", status_code=200)
async def reserve(
    ctx: AppContext, caller: ServiceCaller, data: Reserve, idem: Idempotent
) -> Response[Reservation]:
    async def work(conn: Conn) -> Reservation:
        held = await holds.reserve(
            conn,
            user_id=data.user_id,
            amount=data.amount,
            reason=data.reason,
            app_id=caller.app_or(holds.legacy_app_id(data.reason)),
            ttl_seconds=data.ttl_seconds,
            now=ctx.clock.now(),
        )
        return Reservation(
            reservation_id=held.reservation_id, balance=held.balance, expires_at=held.expires_at
        )

    return await idem.run("credits.reserve", data, work)


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
        return CommitResult(success=True, transaction_id=done.transaction_id)

    return await idem.run("credits.commit", data, work)


@post("/refund-reservation", status_code=200)
async def refund_reservation(
    ctx: AppContext, caller: ServiceCaller, data: ReleaseReservation, idem: Idempotent
) -> Response[ReleaseResult]:
    reservation_id = parse_uuid(data.reservation_id, "reservationId")

    async def work(conn: Conn) -> ReleaseResult:
        balance = await holds.release(conn, reservation_id, owner=_owner(caller), now=ctx.clock.now())
        return ReleaseResult(success=True, balance=balance)

    return await idem.run("credits.refund-reservation", data, work)


routes: list[ControllerRouterHandler] = [
    Router(
        path="/api/v1/internal/credits",
        dependencies=CALLER,
        route_handlers=[reserve, commit, refund_reservation],
        tags=["internal"],
    )
]
