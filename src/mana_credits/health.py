"""Liveness, readiness and the OpenAPI document at its old-style path."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, get

from mana_credits.context import AppContext
from mana_credits.kit.errors import envelope


@get("/health", include_in_schema=False)
async def health() -> dict[str, str]:
    return {"status": "ok", "service": "mana-credits", "timestamp": datetime.now(UTC).isoformat()}


@get("/ready", include_in_schema=False)
async def ready(ctx: AppContext) -> Response[Any]:
    try:
        async with ctx.pool.acquire(timeout=2) as conn:
            await conn.fetchval("SELECT 1", timeout=2)
    except Exception:
        return Response(envelope(503, "Database unavailable", "not_ready"), status_code=503)
    return Response({"status": "ready"}, status_code=200)


@get("/openapi.json", include_in_schema=False)
async def openapi_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = request.app.openapi_schema.to_schema()
    return schema


routes = [health, ready, openapi_json]
