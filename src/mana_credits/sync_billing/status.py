"""What a subscription's status reads, to its user, to services (mana-sync's gate) and to admins."""

from __future__ import annotations

from datetime import datetime

import msgspec

from mana_credits.db.pool import Conn
from mana_credits.sync_billing import repository as repo
from mana_credits.sync_billing.periods import PRICES, SyncInterval
from mana_credits.sync_billing.repository import Subscription
from mana_credits.sync_billing.schemas import AdminSyncStatus, SyncStatus


def to_status(sub: Subscription | None, now: datetime) -> SyncStatus:
    if sub is None:
        return SyncStatus(
            active=False,
            interval=SyncInterval.MONTHLY,
            next_charge_at=None,
            paused_at=None,
            gifted=False,
            cancel_at_period_end=False,
            amount_charged=0,
            next_charge_amount=None,
            active_until=None,
        )
    paid = sub.in_paid_period(now)
    renewing = paid and not sub.cancel_at_period_end and not sub.is_gifted
    return SyncStatus(
        active=sub.is_gifted or paid,
        interval=sub.interval,
        next_charge_at=sub.next_charge_at if renewing else None,
        paused_at=sub.paused_at,
        gifted=sub.is_gifted,
        cancel_at_period_end=paid and sub.cancel_at_period_end,
        amount_charged=0 if sub.is_gifted or sub.activated_at is None else sub.amount_charged,
        next_charge_amount=PRICES[sub.interval] if renewing else None,
        active_until=sub.current_period_end if paid else None,
    )


def as_the_user_sees_it(status: SyncStatus) -> SyncStatus:
    """A cancelled subscription reads `active: false` to its user (with `activeUntil` and
    `cancelAtPeriodEnd`): the unchanged web page then shows it cancelled and offers *Activate* (free until
    the period ends) instead of a *Deactivate* that seems not to have worked. Services (mana-sync's gate)
    keep reading `active: true` until the paid period ends: sync stays usable until then."""
    if status.cancel_at_period_end:
        return msgspec.structs.replace(status, active=False)
    return status


def to_admin_status(user_id: str, sub: Subscription | None, now: datetime) -> AdminSyncStatus:
    base = to_status(sub, now)
    return AdminSyncStatus(
        **{field: getattr(base, field) for field in base.__struct_fields__},
        user_id=user_id,
        gifted_by=sub.gifted_by if sub else None,
        gifted_at=sub.gifted_at if sub else None,
    )


async def status(conn: Conn, user_id: str, now: datetime) -> SyncStatus:
    return to_status(await repo.get(conn, user_id), now)


async def admin_status(conn: Conn, user_id: str, now: datetime) -> AdminSyncStatus:
    return to_admin_status(user_id, await repo.get(conn, user_id), now)
