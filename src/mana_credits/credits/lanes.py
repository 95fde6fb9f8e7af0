"""The commonest requests of the two hottest routes, answered ahead of the framework (kit.lane): a
service's keyless debit and a bearer token's own balance. Anything a lane does not take (a header key,
every 400 and 401) goes to the route, which words it as everywhere."""

from __future__ import annotations

import msgspec
from litestar import Litestar
from litestar.types import Scope

from mana_credits.auth.dependencies import bearer_token, identify_service
from mana_credits.context import AppContext
from mana_credits.credits import service
from mana_credits.credits.schemas import InternalUseCredits
from mana_credits.kit import lane
from mana_credits.kit.errors import CreditsError
from mana_credits.kit.validation import MALFORMED, check_text, field_names
from mana_credits.ledger.schemas import Balance

_DECODE_INTERNAL_USE = msgspec.json.Decoder(InternalUseCredits).decode
_INTERNAL_USE_NAMES = field_names(InternalUseCredits)


def _take_keyless_debit(scope: Scope, headers: lane.Headers, body: bytes) -> lane.Work | None:
    """The work of a service's debit without a key (answering 200 or 402, as the route would); None for
    anything else."""
    ctx: AppContext = scope["app"].state.ctx
    key, app_header = headers.get(b"x-service-key"), headers.get(b"x-app-id")
    json = headers.get(b"content-type") == b"application/json"
    # Any Idempotency-Key header (even an empty one, a 400) is the route's.
    if key is None or not json or b"idempotency-key" in headers:
        return None
    try:
        data = _DECODE_INTERNAL_USE(body)
        app_id = None if app_header is None else app_header.decode("latin-1")
        caller = identify_service(key.decode("latin-1"), app_id, ctx)
        check_text(body, _INTERNAL_USE_NAMES)
        service.charge_amount(data.amount)  # a bad amount is the route's 400
    except (*MALFORMED, CreditsError):
        return None
    if data.idempotency_key is not None:
        return None
    return lambda: service.keyless_use(ctx, data.user_id, data, *service.booked_app(caller, data))


def _take_balance(scope: Scope, headers: lane.Headers, body: bytes) -> lane.Work | None:
    """The work of `GET /credits/balance` with a bearer token (apps and servers). The token is checked in
    the work: a bad one is the route's 401 all the same."""
    token = None if body else bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
    if token is None:
        return None
    ctx: AppContext = scope["app"].state.ctx

    async def work() -> Balance:
        user = await ctx.verifier.verify(token)
        return await ctx.balance_reads.submit(user.id)

    return work


LANES: dict[tuple[str, str], lane.Take] = {
    ("POST", "/api/v1/internal/credits/use"): _take_keyless_debit,
    ("GET", "/api/v1/credits/balance"): _take_balance,
}


def answer_ahead(app: Litestar) -> None:
    lane.answer_ahead(app, LANES)
