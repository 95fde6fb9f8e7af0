"""The credit routes' part of the published OpenAPI document (kit.openapi applies it)."""

from __future__ import annotations

from typing import Any

from mana_credits.kit.openapi import UUID_PATTERN


def adjust(schema: dict[str, Any]) -> None:
    schemas = schema["components"]["schemas"]
    # A refund's transactionId: the old clients send "" for none.
    prop = schemas.get("InternalRefund", {}).get("properties", {}).get("transactionId")
    if prop is not None:
        prop.pop("oneOf", None)
        prop.pop("format", None)
        prop.update(type=["string", "null"], pattern=f"^$|{UUID_PATTERN}", description="UUID or empty")
    # Litestar drops a lower bound of 0 (falsy): committing 0 releases the whole hold.
    amount = schemas.get("Commit", {}).get("properties", {}).get("amount")
    if amount is not None:
        amount["minimum"] = 0
    # A usage debit's amount (credits.service.charge_amount): whole credits or up to three decimals.
    for name in ("UseCredits", "InternalUseCredits"):
        if name in schemas:
            schemas[name]["properties"]["amount"] = {
                "type": "number", "exclusiveMinimum": 0, "maximum": 1_000_000_000, "multipleOf": 0.001,
                "description": "Credits, up to three decimals: fractions accrue per app until a whole "
                "credit is billed as one usage row.",
            }  # fmt: skip
