"""Billing periods in UTC: next date = previous due date + interval, clamped to the month's end while
keeping the anchor day (Jan 31 → Feb 29 → Mar 31), so dates never drift."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from enum import StrEnum


class SyncInterval(StrEnum):
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    YEARLY = "yearly"


# Credits per period (1 credit = 1 cent); no discount for longer periods.
PRICES = {SyncInterval.MONTHLY: 30, SyncInterval.QUARTERLY: 90, SyncInterval.YEARLY: 360}
MONTHS = {SyncInterval.MONTHLY: 1, SyncInterval.QUARTERLY: 3, SyncInterval.YEARLY: 12}


def add_months(moment: datetime, months: int, anchor_day: int) -> datetime:
    """`moment` moved by `months`, on `anchor_day` or the month's last day when it is shorter."""
    moment = moment.astimezone(UTC)
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    day = min(anchor_day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def first_period(now: datetime, interval: SyncInterval) -> tuple[datetime, int]:
    """(period end, anchor day) of a period starting now."""
    now = now.astimezone(UTC)
    return add_months(now, MONTHS[interval], now.day), now.day


def renewal_period(
    due: datetime, interval: SyncInterval, anchor_day: int | None, now: datetime
) -> tuple[datetime, datetime, int]:
    """(start, end, anchor day) of the period a renewal due at `due` pays for, seen at `now`.

    Normally the period starts at the due date. When it would already be over (the service was down for
    more than a period) the user is charged once and the period starts now: no back-charging.
    """
    due = due.astimezone(UTC)
    anchor = anchor_day or due.day
    end = add_months(due, MONTHS[interval], anchor)
    if end > now:
        return due, end, anchor
    end, anchor = first_period(now, interval)
    return now.astimezone(UTC), end, anchor
