"""The statement route's part of the published OpenAPI document (kit.openapi applies it)."""

from __future__ import annotations

from typing import Any

STATEMENT = "/api/v1/admin/statement"
# books.service's calendar month, YYYY-MM of the years 1970-2999.
MONTH = r"^(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])$"


def adjust(schema: dict[str, Any]) -> None:
    """`month` is optional to Litestar (so the admin guard answers first) and required to the server."""
    operation = schema.get("paths", {}).get(STATEMENT, {}).get("get", {})
    for parameter in operation.get("parameters", []):
        if parameter.get("name") == "month":
            parameter.update(required=True, schema={"type": "string", "pattern": MONTH})
