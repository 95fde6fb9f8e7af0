"""Routes of this domain (filled in by its issue)."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

routes: list[ControllerRouterHandler] = []
