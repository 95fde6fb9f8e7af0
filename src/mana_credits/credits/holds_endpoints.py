"""Routes /api/v1/internal/credits/reserve|commit|refund-reservation (filled in by the holds issue)."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

routes: list[ControllerRouterHandler] = []
