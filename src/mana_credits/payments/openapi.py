"""The payment routes' part of the published OpenAPI document (kit.openapi applies it)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from mana_credits.kit.validation import URL_FORBIDDEN

WEBHOOK = "/api/v1/webhooks/stripe"


def adjust(origins: list[str]) -> Callable[[dict[str, Any]], None]:
    """The adjustment for return URLs on `origins` (the web app's)."""

    def apply(schema: dict[str, Any]) -> None:
        _return_urls(schema["components"]["schemas"], origins)
        operation = schema.get("paths", {}).get(WEBHOOK, {}).get("post")
        if operation is not None:
            _webhook(operation)

    return apply


def _webhook(operation: dict[str, Any]) -> None:
    """Stripe signs the raw event: without a Stripe-Signature the request is refused (400)."""
    operation["parameters"] = [{
        "name": "Stripe-Signature", "in": "header", "required": True,
        "schema": {"type": "string", "pattern": "t=[0-9]+"}, "description": "t=<unix time>,v1=<HMAC-SHA256>",
    }]  # fmt: skip
    operation["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {
            "type": "object", "required": ["id", "type", "data"],
            "properties": {"id": {"type": "string"}, "type": {"type": "string"},
                           "data": {"type": "object", "required": ["object"],
                                    "properties": {"object": {"type": "object"}}}},
        }}},
    }  # fmt: skip


def _return_urls(schemas: dict[str, Any], origins: list[str]) -> None:
    """successUrl/cancelUrl: URLs on the web app's own origins (payments.return_urls checks the same)."""
    purchase = schemas.get("PurchaseRequest")
    if purchase is None or not origins:
        return
    alternatives = "|".join(re.escape(origin) for origin in sorted(origins))
    url = {
        "type": "string",
        "maxLength": 2000,
        "pattern": f"^(?:{alternatives})(?:[/?#][^{URL_FORBIDDEN}]*)?$",
    }
    for field in ("successUrl", "cancelUrl"):
        if field in purchase.get("properties", {}):
            purchase["properties"][field] = {"oneOf": [url, {"type": "null"}]}
