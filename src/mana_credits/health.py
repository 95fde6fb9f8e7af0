"""Liveness, readiness and the published OpenAPI document (at /openapi.json and under /docs)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Request, get
from litestar.openapi.plugins import JsonRenderPlugin

from mana_credits.books import openapi as books_openapi
from mana_credits.context import AppContext
from mana_credits.credits import openapi as credits_openapi
from mana_credits.db.pool import WRITABLE
from mana_credits.gifts import openapi as gifts_openapi
from mana_credits.kit import openapi
from mana_credits.kit.errors import NotReady
from mana_credits.payments import openapi as payments_openapi
from mana_credits.payments import return_urls


class Health(msgspec.Struct):
    status: str
    service: str
    timestamp: str


class Ready(msgspec.Struct):
    status: str


@get("/health", include_in_schema=False)
async def health() -> Health:
    return Health(status="ok", service="mana-credits", timestamp=datetime.now(UTC).isoformat())


@get("/ready", include_in_schema=False)
async def ready(ctx: AppContext) -> Ready:
    try:
        async with ctx.pool.acquire(timeout=2) as conn:
            writable = await conn.fetchval(WRITABLE, timeout=2)
    except Exception:
        raise NotReady() from None
    if not writable:
        raise NotReady("The database answers but is read-only (a standby): writes would fail")
    return Ready(status="ready")


def published(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Litestar's document made true by kit.openapi; built once, the routes do not change while running."""
    state = request.app.state
    if "openapi" not in state:
        origins = sorted(return_urls.allowed_origins(state.ctx.settings))
        adjustments = [credits_openapi.adjust, gifts_openapi.adjust, payments_openapi.adjust(origins),
                       books_openapi.adjust]  # fmt: skip
        state.openapi = openapi.document(request.app.openapi_schema.to_schema(), adjustments)
    schema: dict[str, Any] = state.openapi
    return schema


class PublishedJson(JsonRenderPlugin):
    """/docs/openapi.json, read by the reference page at /docs: the published document, not the raw one."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return self.render_json(request, published(request))


@get("/openapi.json", include_in_schema=False)
async def openapi_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return published(request)


routes = [health, ready, openapi_json]
