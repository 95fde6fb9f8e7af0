"""Cloud-sync subscription rules. Every function runs inside the caller's
transaction: the subscription row is locked or claimed before credits move, and the ledger change,
the row change and any queued email commit together or not at all."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import msgspec

from mana_credits import ledger
from mana_credits.db.pool import Conn
from mana_credits.ledger import DebitItem, debit_many
from mana_credits.ledger.schemas import TxType
from mana_credits.notifications import repository as outbox
from mana_credits.notifications.service import sync_paused
from mana_credits.sync_billing import repository as repo
from mana_credits.sync_billing.errors import SyncAlreadyActive, SyncGifted, SyncNotActive, SyncNotGifted
from mana_credits.sync_billing.periods import PRICES, SyncInterval, first_period, renewal_period
from mana_credits.sync_billing.repository import Subscription
from mana_credits.sync_billing.schemas import (
    ActivateResult,
    AdminSyncChange,
    AdminSyncStatus,
    ChangeIntervalResult,
    DeactivateResult,
    RenewalResult,
)
from mana_credits.sync_billing.status import to_admin_status

log = logging.getLogger("mana_credits.sync_billing")

APP_ID = "sync"
BATCH = 500
RETRY_BASE = timedelta(minutes=5)
RETRY_MAX = timedelta(days=1)


def resume_url(web_app_url: str) -> str:
    """The web app's sync settings, where a paused subscription is reactivated (the old service's link)."""
    return f"{web_app_url.rstrip('/')}/settings/sync"


def period_key(user_id: str, period_start: datetime) -> str:
    return f"sync:{user_id}:{period_start.isoformat()}"


def _metadata(interval: SyncInterval, start: datetime, end: datetime) -> dict[str, str]:
    return {"interval": interval.value, "periodStart": start.isoformat(), "periodEnd": end.isoformat()}


def _description(interval: SyncInterval) -> str:
    return f"Cloud Sync ({interval.value})"


# ---- user actions ----


async def activate(
    conn: Conn, user_id: str, *, interval: SyncInterval | None, email: str | None, now: datetime
) -> ActivateResult:
    sub = await repo.lock(conn, user_id, create=True)
    assert sub is not None
    if sub.is_gifted:
        raise SyncGifted()
    chosen = interval or sub.interval
    if sub.in_paid_period(now):
        if not sub.cancel_at_period_end:
            raise SyncAlreadyActive()
        # Still inside the paid period: undo the cancellation, free of charge.
        sub = await repo.set_cancelled(conn, user_id, False, email)
        if chosen is not sub.interval:
            sub = await repo.set_interval(conn, user_id, chosen)
        return ActivateResult(
            success=True,
            active=True,
            interval=sub.interval,
            next_charge_at=sub.next_charge_at,
            amount_charged=0,
        )
    end, anchor = first_period(now, chosen)
    price = PRICES[chosen]
    await ledger.debit(
        conn,
        user_id,
        price,
        type=TxType.USAGE,
        app_id=APP_ID,
        description=_description(chosen),
        metadata=_metadata(chosen, now, end),
        idempotency_key=period_key(user_id, now),
        record_usage=True,
    )
    sub = await repo.start_period(
        conn, user_id, interval=chosen, now=now, period_end=end, anchor_day=anchor, email=email
    )
    return ActivateResult(
        success=True,
        active=True,
        interval=sub.interval,
        next_charge_at=sub.next_charge_at,
        amount_charged=price,
    )


async def deactivate(conn: Conn, user_id: str, *, now: datetime) -> DeactivateResult:
    """No further charges; sync stays usable until the paid period ends.

    Idempotent: the web app still shows *Deactivate* while the paid period runs (`active: true`), so
    cancelling an already-cancelled subscription answers the same 200 and changes nothing.
    """
    sub = await repo.lock(conn, user_id, create=False)
    if sub is not None and sub.is_gifted:
        raise SyncGifted()
    if sub is None or not sub.in_paid_period(now):
        raise SyncNotActive()
    if not sub.cancel_at_period_end:
        sub = await repo.set_cancelled(conn, user_id, True)
    # `active` as the user's status now reads (cancelled); sync itself stays usable until `activeUntil`.
    return DeactivateResult(success=True, active=False, active_until=sub.current_period_end)


async def change_interval(
    conn: Conn, user_id: str, interval: SyncInterval, *, now: datetime
) -> ChangeIntervalResult:
    """The next charge uses the new interval and price; nothing is charged now (the current interval
    again changes nothing: a retried change answers the same)."""
    sub = await repo.lock(conn, user_id, create=False)
    if sub is not None and sub.is_gifted:
        raise SyncGifted()
    if sub is None or not sub.in_paid_period(now):
        raise SyncNotActive()
    if interval is not sub.interval:
        sub = await repo.set_interval(conn, user_id, interval)
    return ChangeIntervalResult(
        success=True,
        interval=interval,
        amount_charged=0,
        next_charge_amount=PRICES[interval],
        effective_at=sub.current_period_end,
    )


# ---- admin ----


async def gift(conn: Conn, user_id: str, *, admin_id: str, now: datetime) -> AdminSyncChange:
    return _changed(to_admin_status(user_id, await repo.gift(conn, user_id, admin_id=admin_id, now=now), now))


async def revoke_gift(conn: Conn, user_id: str, *, now: datetime) -> AdminSyncChange:
    sub = await repo.revoke_gift(conn, user_id, now)
    if sub is None:
        raise SyncNotGifted()
    return _changed(to_admin_status(user_id, sub, now))


def _changed(status: AdminSyncStatus) -> AdminSyncChange:
    return AdminSyncChange(**msgspec.structs.asdict(status))


# ---- renewals ----


@dataclass(frozen=True, slots=True)
class _Renewal:
    sub: Subscription
    key: str
    start: datetime
    end: datetime
    anchor: int

    @classmethod
    def plan(cls, sub: Subscription, now: datetime) -> _Renewal:
        assert sub.next_charge_at is not None
        start, end, anchor = renewal_period(sub.next_charge_at, sub.interval, sub.anchor_day, now)
        # Keyed by the due date, which every runner sees the same, not by `now`.
        return cls(
            sub=sub, key=period_key(sub.user_id, sub.next_charge_at), start=start, end=end, anchor=anchor
        )


async def renew(conn: Conn, subs: list[Subscription], now: datetime, resume: str) -> RenewalResult:
    """Renew claimed subscriptions: charge one period each (once per period key), pause those without
    enough credits and queue their email, end the cancelled ones. A few statements per batch."""
    ending = [sub.user_id for sub in subs if sub.cancel_at_period_end]
    plans = [_Renewal.plan(sub, now) for sub in subs if not sub.cancel_at_period_end]
    fresh = await repo.claim_period_keys(conn, [plan.key for plan in plans])
    to_charge = [plan for plan in plans if plan.key in fresh]
    charged = await debit_many(
        conn,
        [
            DebitItem(
                user_id=plan.sub.user_id,
                amount=PRICES[plan.sub.interval],
                description=_description(plan.sub.interval),
                metadata=_metadata(plan.sub.interval, plan.start, plan.end),
                idempotency_key=plan.key,
            )
            for plan in to_charge
        ],
        type=TxType.USAGE,
        app_id=APP_ID,
        record_usage=True,
    )
    short = [plan for plan in to_charge if plan.sub.user_id not in charged]
    # A period whose key was already taken was paid before: move on without charging again.
    renewed = [plan for plan in plans if plan.key not in fresh or plan.sub.user_id in charged]
    await repo.release_period_keys(conn, [plan.key for plan in short])
    await repo.renew_many(
        conn,
        [plan.sub.user_id for plan in renewed],
        [plan.end for plan in renewed],
        [plan.anchor for plan in renewed],
        [PRICES[plan.sub.interval] for plan in renewed],
    )
    await repo.pause_many(conn, [plan.sub.user_id for plan in short], now)
    await outbox.enqueue_many(conn, [_pause_email(plan, resume) for plan in short], now)
    await repo.end_many(conn, ending)
    return RenewalResult(charged=len(charged), paused=len(short), total=len(subs), deactivated=len(ending))


def _pause_email(plan: _Renewal, resume: str) -> tuple[str, dict[str, object]]:
    assert plan.sub.next_charge_at is not None
    external_id = f"sync-paused:{plan.sub.user_id}:{plan.sub.next_charge_at.isoformat()}"
    return external_id, sync_paused(
        user_id=plan.sub.user_id,
        email=plan.sub.email,
        amount=PRICES[plan.sub.interval],
        resume_url=resume,
        external_id=external_id,
    )


def retry_delay(failures: int) -> timedelta:
    """5 min, 10 min, 20 min … at most a day between tries of a subscription that keeps failing."""
    delay: timedelta = RETRY_BASE * 2 ** max(failures - 1, 0)
    return min(delay, RETRY_MAX)


async def charge_recurring(
    pool: asyncpg.Pool,
    now: datetime,
    *,
    resume: str,
    batch: int = BATCH,
    progress: Callable[[int], object] | None = None,
) -> RenewalResult:
    """Renew everything due at `now`, batch by batch, until no due row is left unclaimed.

    Safe to run in several processes at once: rows are claimed with SKIP LOCKED and renewed in the
    claiming transaction, and each period's idempotency key admits a single charge.
    """
    result = RenewalResult()
    while True:
        part = await _run_batch(pool, now, resume, batch)
        if part is None:
            return result
        result.add(part)
        if progress is not None:
            progress(part.total)


async def _run_batch(pool: asyncpg.Pool, now: datetime, resume: str, batch: int) -> RenewalResult | None:
    async with pool.acquire() as conn:
        try:
            async with conn.transaction():
                subs = await repo.claim_due(conn, now, batch)
                if not subs:
                    return None
                return await renew(conn, subs, now, resume)
        except Exception:
            # Whatever broke, the batch rolled back: nothing was charged. Isolate the culprit.
            log.exception("renewal batch failed; renewing its subscriptions one by one")
        return await _one_by_one(conn, now, resume, batch)


async def _one_by_one(conn: Conn, now: datetime, resume: str, batch: int) -> RenewalResult:
    """The slow path after a failed batch: each row in its own savepoint, so one bad row is put off
    with a backoff instead of blocking the rest (or being retried on every run)."""
    result = RenewalResult()
    async with conn.transaction():
        for sub in await repo.claim_due(conn, now, batch):
            try:
                async with conn.transaction():
                    result.add(await renew(conn, [sub], now, resume))
            except Exception:
                log.exception("renewal of %s failed; retrying later", sub.user_id)
                await repo.record_failure(conn, sub.user_id, now + retry_delay(sub.failure_count + 1))
                result.errors += 1
                result.total += 1
    return result
