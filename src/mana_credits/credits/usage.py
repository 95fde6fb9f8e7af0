"""`GET /api/v1/credits/usage`: credits used per day and app, for charts (the web dashboard draws it)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

import msgspec
from litestar import Router, get
from litestar.params import Parameter

from mana_credits.auth.dependencies import USER
from mana_credits.auth.models import AuthUser
from mana_credits.context import AppContext
from mana_credits.credits import repository
from mana_credits.kit.errors import ValidationFailed


class UsageDay(msgspec.Struct, rename="camel", kw_only=True):
    date: date
    app_id: str
    credits: int


class Usage(msgspec.Struct, rename="camel", kw_only=True):
    days: int
    timezone: str
    # First and last local day of the window (both included).
    start: date
    end: date
    total: int
    # Only days and apps with usage; newest day last.
    items: list[UsageDay]


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


@get("/usage")
async def my_usage(
    ctx: AppContext,
    user: AuthUser,
    days: int = Parameter(default=30, ge=1, le=366),
    tz: str = Parameter(default="UTC", max_length=64),
) -> Usage:
    # UTC needs no time zone files (a slim image may have none).
    if tz != "UTC" and tz not in _zones():
        raise ValidationFailed(
            "tz must be an IANA time zone name", details={"fields": [{"field": "tz", "source": "query"}]}
        )
    zone: tzinfo = UTC if tz == "UTC" else ZoneInfo(tz)
    end = ctx.clock.now().astimezone(zone).date()
    start = end - timedelta(days=days - 1)
    since = datetime.combine(start, time(), tzinfo=zone)
    async with ctx.pool.acquire() as conn:
        rows = await repository.usage_per_day(conn, user.id, since=since, tz=tz)
    items = [UsageDay(date=row["day"], app_id=row["app_id"], credits=row["credits"]) for row in rows]
    return Usage(
        days=days, timezone=tz, start=start, end=end, total=sum(i.credits for i in items), items=items
    )


routes = [Router(path="/api/v1/credits", dependencies=USER, route_handlers=[my_usage], tags=["credits"])]
