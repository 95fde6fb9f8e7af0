"""Routes: packages (public), purchases (JWT), the Stripe webhook."""

from __future__ import annotations

from litestar import Router, get

from mana_credits.auth.dependencies import USER
from mana_credits.auth.models import AuthUser
from mana_credits.context import AppContext
from mana_credits.kit.errors import NotFound
from mana_credits.kit.validation import parse_uuid
from mana_credits.payments import repository
from mana_credits.payments.models import Package, Purchase


@get("/packages")
async def packages(ctx: AppContext) -> list[Package]:
    async with ctx.pool.acquire() as conn:
        return await repository.active_packages(conn)


@get("/purchases")
async def my_purchases(ctx: AppContext, user: AuthUser) -> list[Purchase]:
    async with ctx.pool.acquire() as conn:
        return await repository.user_purchases(conn, user.id)


@get("/purchase/{purchase_id:str}")
async def my_purchase(ctx: AppContext, user: AuthUser, purchase_id: str) -> Purchase:
    async with ctx.pool.acquire() as conn:
        purchase = await repository.user_purchase(conn, user.id, parse_uuid(purchase_id, "id"))
    if purchase is None:
        raise NotFound("Purchase not found")
    return purchase


routes = [
    Router(path="/api/v1/credits", route_handlers=[packages], tags=["packages"]),
    Router(
        path="/api/v1/credits",
        dependencies=USER,
        route_handlers=[my_purchases, my_purchase],
        tags=["purchases"],
    ),
]
