"""`GET /api/v1/credits/usage`: credits used per day and app, for charts (the web dashboard draws it).

Days are calendar days in Europe/Berlin: `usage_stats` keeps one row per usage stamped with its Berlin day
(as the old service counted it), so no other zone can be told apart."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import msgspec
from litestar import Router, get
from litestar.params import Parameter

from mana_credits.auth.dependencies import USER
from mana_credits.auth.models import AuthUser
from mana_credits.context import AppContext
from mana_credits.credits import repository
from mana_credits.credits.schemas import UsageDay

ZONE = "Europe/Berlin"


class Usage(msgspec.Struct, rename="camel", kw_only=True):
    days: int
    timezone: str
    # First and last day of the window (both included).
    start: date
    end: date
    total: int
    # Only days and apps with usage; newest day last.
    items: list[UsageDay]


@get("/usage")
async def my_usage(ctx: AppContext, user: AuthUser, days: int = Parameter(default=30, ge=1, le=366)) -> Usage:
    zone = ZoneInfo(ZONE)
    end = ctx.clock.now().astimezone(zone).date()
    start = end - timedelta(days=days - 1)
    since = datetime.combine(start, time(), tzinfo=zone)
    async with ctx.pool.acquire() as conn:
        items = await repository.usage_per_day(conn, user.id, since=since, tz=ZONE)
    return Usage(
        days=days, timezone=ZONE, start=start, end=end, total=sum(i.credits for i in items), items=items
    )


routes = [Router(path="/api/v1/credits", dependencies=USER, route_handlers=[my_usage], tags=["credits"])]
