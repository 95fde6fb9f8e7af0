"""Route GET /api/v1/admin/statement (admin JWT)."""

from __future__ import annotations

from litestar import Router, get

from mana_credits.auth.dependencies import ADMIN
from mana_credits.auth.models import AuthUser
from mana_credits.books import service
from mana_credits.books.schemas import Statement
from mana_credits.context import AppContext


@get("/statement")
async def statement(ctx: AppContext, admin: AuthUser, month: str | None = None) -> Statement:
    """The month's statement (YYYY-MM in Europe/Berlin); `reconciled: false` lists each problem."""
    # Optional to Litestar, so the admin guard answers first; a missing or bad month is a 400 here.
    service.month_bounds(month or "")
    async with ctx.pool.acquire() as conn:
        return await service.build(conn, month or "")


routes = [Router(path="/api/v1/admin", dependencies=ADMIN, route_handlers=[statement], tags=["admin"])]
