"""Credits rules: how a usage debit is booked (decided here once, for the route and the lane); a refund
returns at most what is left of its usage; a grant happens once per reference; usage per day for charts.
Holds have their own module (holds.py)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from mana_credits import ledger
from mana_credits.auth.models import ServiceCaller
from mana_credits.context import AppContext
from mana_credits.credits import repository
from mana_credits.credits.schemas import (
    GrantResult,
    InternalRefund,
    InternalUseCredits,
    NewBalance,
    RefundResult,
    Usage,
    UseCredits,
    UseResult,
)
from mana_credits.db.pool import Conn
from mana_credits.kit import idempotency
from mana_credits.kit.batching import Batcher
from mana_credits.kit.errors import Conflict, NotFound, ValidationFailed
from mana_credits.kit.standby import StandbyReads
from mana_credits.ledger import accrual
from mana_credits.ledger.fraction_commit import charge_alone
from mana_credits.ledger.group import UsageDebit, usage_debit
from mana_credits.ledger.schemas import Balance, TxType


def request_params(data: msgspec.Struct, *extra: Any) -> Any:
    """What identifies a request for idempotency: the body without its key."""
    return [msgspec.structs.replace(data, idempotency_key=None), *extra]


# ---- usage debits ----

MAX_CHARGE = Decimal(1_000_000_000)


def charge_amount(value: int | float) -> int | Decimal:
    """A usage debit's amount: an int for whole credits (`1.0` too), a Decimal for a fraction; anything
    not > 0, above the bound or with more than three decimals is a 400. A JSON number decoded as a float
    is read back exactly as written: within the bound, three decimals are at most 13 significant digits,
    and the shortest repr of such a float is that number (never float arithmetic)."""
    amount = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    if amount.is_finite() and 0 < amount <= MAX_CHARGE and amount == amount.quantize(accrual.QUANTUM):
        return int(amount) if amount == amount.to_integral_value() else amount.quantize(accrual.QUANTUM)
    message = f"amount must be above 0 and at most {MAX_CHARGE}, with at most three decimals"
    raise ValidationFailed(message, details={"fields": [{"field": "amount", "message": message}]})


def _charge(
    user_id: str,
    amount: Decimal,
    data: UseCredits,
    app_id: str,
    extra: dict[str, Any] | None,
    key: str | None,
) -> accrual.Charge:
    return accrual.Charge(user_id, amount, app_id, data.description, _metadata(data, extra), key)


async def keyed_use(
    conn: Conn, user_id: str, data: UseCredits, app_id: str, extra: dict[str, Any] | None, key: str
) -> UseResult:
    """A debit with an idempotency key: its own transaction, which stores the answer with the key."""
    amount = charge_amount(data.amount)
    if isinstance(amount, Decimal):
        return UseResult.accrued_by(
            await accrual.charge(conn, _charge(user_id, amount, data, app_id, extra, key))
        )
    entry = await ledger.debit(
        conn,
        user_id,
        amount,
        type=TxType.USAGE,
        app_id=app_id,
        description=data.description,
        metadata=_metadata(data, extra),
        idempotency_key=key,
        record_usage=True,
    )
    return UseResult.of(entry)


async def keyless_use(
    ctx: AppContext, user_id: str, data: UseCredits, app_id: str, extra: dict[str, Any] | None
) -> UseResult:
    """A debit without a key, from the route or the lane: through the process's group commit, or alone
    with GROUP_COMMIT off; either tells the truth after a lost connection (ledger.outcome)."""
    amount = charge_amount(data.amount)
    if isinstance(amount, Decimal):
        charge = _charge(user_id, amount, data, app_id, extra, None)
        if ctx.fraction_commit is None:
            return UseResult.accrued_by(await charge_alone(ctx.pool, charge))
        return UseResult.accrued_by(await ctx.fraction_commit.charge(charge))
    item = UsageDebit(user_id, amount, app_id, data.description, _metadata(data, extra))
    if ctx.group_commit is None:
        return UseResult.of(await usage_debit(ctx.pool, item))
    return UseResult.of(await ctx.group_commit.debit(item))


def _metadata(data: UseCredits, extra: dict[str, Any] | None) -> dict[str, Any] | None:
    return {**(data.metadata or {}), **(extra or {})} or None


def booked_app(caller: ServiceCaller, data: InternalUseCredits) -> tuple[str, dict[str, Any] | None]:
    """The app a service's debit is booked to, and the caller in its metadata when that is another app."""
    # A per-app key names the app authoritatively; with the shared key the body's appId is all we have.
    app_id = caller.app_id if caller.per_app_key else data.app_id
    return app_id, {"calledBy": caller.app_id} if caller.app_id != app_id else None


# ---- balance reads ----


def balance_reads(reader: asyncpg.Pool, standby: StandbyReads) -> Batcher[str, Balance]:
    """Concurrent reads of people's own balances share one query (kit.batching), on the read replica when
    configured (a balance shown a moment late is fine for a person; the internal balance, which apps check
    before charging, stays on the primary), on a standby while the primary is away."""

    async def read(user_ids: list[str]) -> list[Balance | Exception]:
        async def query(conn: Conn) -> list[Balance | Exception]:
            return [*await ledger.get_balances(conn, user_ids)]

        return await standby.read(reader, query)

    return Batcher(read)


async def refund(
    conn: Conn, data: InternalRefund, *, original: UUID | None, app_id: str, idempotency_key: str | None
) -> RefundResult:
    """Credit a refund; with `original`, only up to what is left of that usage of this user."""
    metadata = dict(data.metadata or {})
    if original is not None:
        metadata["refundOf"] = str(original)
        usage = await repository.lock_usage(conn, original, data.user_id)
        if usage is None:
            raise NotFound("Usage transaction not found for this user")
        refundable = -usage - await repository.refunded_so_far(conn, original, data.user_id)
        if data.amount > refundable:
            raise Conflict(
                "Refund exceeds what is left of the original usage",
                details={"requested": data.amount, "refundable": refundable},
            )
    entry = await ledger.credit(
        conn,
        data.user_id,
        data.amount,
        type=TxType.REFUND,
        app_id=app_id,
        description=data.description,
        metadata=metadata or None,
        idempotency_key=idempotency_key,
    )
    return RefundResult(
        success=True, transaction=entry.transaction, new_balance=NewBalance(balance=entry.balance)
    )


async def grant_once(
    conn: Conn, *, user_id: str, amount: int, reason: str, reference_id: str, app_id: str, description: str
) -> tuple[GrantResult, bool]:
    """Credit `amount` unless this reference was granted before: (answer, replayed). The internal grant
    route and `mana-credits grant` share it; the caller owns the transaction."""
    scope = f"grant:{user_id}"
    stored = await idempotency.claim(conn, scope, reference_id, "grant")
    if stored is not None:
        balance = await ledger.get_balance(conn, user_id, create=False)
        # The first answer, as stored (references the old service granted have no newBalance), made current.
        body = {**stored[1], "alreadyGranted": True, "newBalance": balance.balance}
        return msgspec.convert(body, GrantResult), True
    entry = await ledger.credit(
        conn,
        user_id,
        amount,
        type=TxType.GRANT,
        app_id=app_id,
        description=description,
        metadata={"referenceId": reference_id, "reason": reason},
    )
    result = GrantResult(
        ok=True, already_granted=False, new_balance=entry.balance, transaction_id=str(entry.transaction.id)
    )
    await idempotency.remember(conn, scope, reference_id, 200, result)
    return result, False


# Usage days are calendar days in Europe/Berlin: `usage_stats` keeps one row per usage stamped with its
# Berlin day (as the old service counted it), so no other zone can be told apart.
USAGE_ZONE = "Europe/Berlin"


async def usage(conn: Conn, user_id: str, *, days: int, now: datetime) -> Usage:
    """Credits used per day and app over the last `days` days (today included), for charts."""
    zone = ZoneInfo(USAGE_ZONE)
    end = now.astimezone(zone).date()
    start = end - timedelta(days=days - 1)
    since = datetime.combine(start, time(), tzinfo=zone)
    items = await repository.usage_per_day(conn, user_id, since=since, tz=USAGE_ZONE)
    total = sum(item.credits for item in items)
    return Usage(days=days, timezone=USAGE_ZONE, start=start, end=end, total=total, items=items)
