"""Credits rules: a refund returns at most what is left of its usage; a grant happens once per reference;
usage per day for charts. Holds have their own module (holds.py)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec

from mana_credits import ledger
from mana_credits.credits import repository
from mana_credits.credits.schemas import (
    GrantResult,
    InternalRefund,
    NewBalance,
    RefundResult,
    Usage,
)
from mana_credits.db.pool import Conn
from mana_credits.kit import idempotency
from mana_credits.kit.errors import Conflict, NotFound
from mana_credits.ledger.schemas import TxType


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
