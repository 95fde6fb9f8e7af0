"""Request bodies, responses and domain errors of the cloud-sync subscription."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from mana_credits.sync_billing.periods import SyncInterval

Key = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


class Activate(msgspec.Struct, rename="camel", kw_only=True):
    # Omitted: the subscription's current interval (monthly for a new one).
    interval: SyncInterval | None = None
    idempotency_key: Key | None = None


class ChangeInterval(msgspec.Struct, rename="camel", kw_only=True):
    interval: SyncInterval
    idempotency_key: Key | None = None


class SyncStatus(msgspec.Struct, rename="camel", kw_only=True):
    active: bool
    interval: SyncInterval
    next_charge_at: datetime | None
    paused_at: datetime | None
    gifted: bool
    cancel_at_period_end: bool
    # Credits the current period cost: 0 when nothing was charged (never activated, gifted).
    amount_charged: int
    # Credits the next renewal will take; null when none is due (cancelled, paused, gifted, inactive).
    next_charge_amount: int | None
    # End of the paid period: with a cancellation, sync stays usable until then.
    active_until: datetime | None


class AdminSyncStatus(SyncStatus, kw_only=True):
    user_id: str
    gifted_by: str | None
    gifted_at: datetime | None


class AdminSyncChange(AdminSyncStatus, kw_only=True):
    """The answer to an admin gift or revoke: the new status, plus the old service's `success`."""

    success: bool = True


class ActivateResult(msgspec.Struct, rename="camel", kw_only=True):
    success: bool
    active: bool
    interval: SyncInterval
    next_charge_at: datetime | None
    # Credits charged by this call: 0 when it only undid a cancellation.
    amount_charged: int


class DeactivateResult(msgspec.Struct, rename="camel", kw_only=True):
    success: bool
    active: bool
    active_until: datetime | None


class ChangeIntervalResult(msgspec.Struct, rename="camel", kw_only=True):
    success: bool
    interval: SyncInterval
    # Credits charged by this call: always 0 (the new price applies from the next renewal).
    amount_charged: int
    # What the next renewal will take.
    next_charge_amount: int
    effective_at: datetime | None


class RenewalResult(msgspec.Struct, rename="camel", kw_only=True):
    charged: int = 0
    paused: int = 0
    errors: int = 0
    total: int = 0
    # Cancelled subscriptions whose paid period ended (no charge).
    deactivated: int = 0

    def add(self, other: RenewalResult) -> None:
        self.charged += other.charged
        self.paused += other.paused
        self.errors += other.errors
        self.total += other.total
        self.deactivated += other.deactivated
