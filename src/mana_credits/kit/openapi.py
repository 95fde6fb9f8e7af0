"""Make the generated OpenAPI document true: every error is our envelope, and each operation lists the
statuses it really answers (Litestar documents only a 400 with its own error shape)."""

from __future__ import annotations

import copy
import re
import zoneinfo
from collections.abc import Callable, Sequence
from typing import Any

from litestar.openapi import ResponseSpec

from mana_credits.kit.errors import CreditsError

ENVELOPE_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}
ENVELOPE = {
    "type": "object",
    "description": "Every error answer of this service.",
    "required": ["statusCode", "message", "code"],
    "properties": {
        "statusCode": {"type": "integer", "minimum": 400, "maximum": 599},
        "message": {"type": "string"},
        "code": {"type": "string", "examples": ["validation_error", "insufficient_credits"]},
        "details": {"description": "More about the error (fields, required/available credits, ...)"},
    },
    "additionalProperties": False,
    "examples": [{"statusCode": 402, "message": "Insufficient credits", "code": "insufficient_credits",
                  "details": {"required": 10, "available": 3}}],
}  # fmt: skip

DESCRIPTIONS = {
    400: "Invalid request (validation_error, or a refusal that names its code)",
    401: "Missing or invalid credentials",
    402: "Insufficient credits",
    403: "Not allowed for this caller",
    404: "Not found",
    409: "Conflict with the current state, or an Idempotency-Key reused with other parameters",
    410: "Gone (an expired gift)",
    413: "Request body larger than allowed",
    429: "Too many attempts; see Retry-After",
    502: "The payment provider could not be reached",
    503: "Temporarily unavailable (database down; payments not configured)",
}

_WRITE = {409}


def raises(*errors: type[CreditsError]) -> dict[int, ResponseSpec]:
    """A route's `responses=`: the statuses of the errors it raises beyond the ones every route of its
    kind answers (400 for input, 413 for a body, 401/403 by route group, 503 for the database, 409 for a
    reused Idempotency-Key on a write); `document` gives each our envelope."""
    return {
        error.status: ResponseSpec(None, description=DESCRIPTIONS[error.status], generate_examples=False)
        for error in errors
    }


# Writes that take no Idempotency-Key, and reads that cannot conflict.
_NO_CONFLICT = {
    "POST /api/v1/webhooks/stripe",
    "POST /api/v1/internal/gifts/expire",
    "POST /api/v1/internal/sync/charge-recurring",
    "POST /api/v1/internal/credits/init",
    "DELETE /api/v1/internal/credits/balance/{user_id}",
}
# Operations that never touch the database.
_NO_DATABASE = {"GET /api/v1/credits/operations", "GET /metrics"}
_PERSONAL_PREFIXES = ("/api/v1/credits/", "/api/v1/gifts", "/api/v1/sync/")
_PUBLIC = {"GET /api/v1/gifts/{code}", "GET /api/v1/credits/packages", "GET /api/v1/credits/operations",
           "POST /api/v1/webhooks/stripe", "GET /metrics"}  # fmt: skip


UUID_PATTERN = "^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
_UUID = {"type": "string", "format": "uuid", "pattern": UUID_PATTERN}
# Strings the handlers parse as UUIDs (path parameters and body fields).
UUID_FIELDS = {"gift_id", "purchase_id", "transactionId", "reservationId", "packageId"}


def _uuid_fields(schema: dict[str, Any]) -> None:
    for component in schema.get("components", {}).get("schemas", {}).values():
        for name, prop in component.get("properties", {}).items():
            if name in UUID_FIELDS:
                prop.update({k: v for k, v in _UUID.items() if k != "type"})
                if prop.get("type") == "string" or ("type" not in prop and "oneOf" not in prop):
                    prop["type"] = "string"
            for option in prop.get("oneOf", []):
                if name in UUID_FIELDS and option.get("type") == "string":
                    option.update(_UUID)


# Litestar drops a lower bound of 0 (falsy): these parameters have one.
ZERO_MINIMUM_PARAMETERS = {"offset"}


def _parameters(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        if parameter.get("name") in ZERO_MINIMUM_PARAMETERS:
            parameter.setdefault("schema", {})["minimum"] = 0
        if parameter.get("name") in UUID_FIELDS:
            parameter["schema"] = dict(_UUID)
        elif parameter.get("name") == "tz":  # any IANA zone name
            parameter["schema"] = {"type": "string", "enum": sorted(zoneinfo.available_timezones()),
                                   "default": "UTC"}  # fmt: skip


def statuses(method: str, path: str, operation: dict[str, Any], declared: set[int]) -> set[int]:
    """The error statuses this operation can answer: those its route declares (`raises`), and the rest."""
    name = f"{method.upper()} {path}"
    found = set(declared)
    body = "requestBody" in operation
    if operation.get("parameters") or body:
        found.add(400)
    if body:
        found.add(413)
    if path.startswith("/api/v1/internal/"):
        found.add(401)
    elif path.startswith("/api/v1/admin/"):
        found |= {401, 403}
    elif name not in _PUBLIC and path.startswith(_PERSONAL_PREFIXES):
        found.add(401)
    if name == "POST /api/v1/webhooks/stripe":
        found.add(400)  # a bad signature
    if name not in _NO_DATABASE:
        found.add(503)
    if method.upper() in ("POST", "DELETE") and name not in _NO_CONFLICT:
        found |= _WRITE
    return found


Adjustment = Callable[[dict[str, Any]], None]


def document(schema: dict[str, Any], adjustments: Sequence[Adjustment] = ()) -> dict[str, Any]:
    """A copy of Litestar's OpenAPI dict with our error envelope and each operation's real statuses;
    `adjustments` are the domains' own corrections (each domain's openapi.py), applied in order."""
    schema = copy.deepcopy(schema)
    schema.setdefault("components", {}).setdefault("schemas", {})["ErrorEnvelope"] = ENVELOPE
    _uuid_fields(schema)
    for adjust in adjustments:
        adjust(schema)
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            _parameters(operation)
            body = operation.get("requestBody")
            if body is not None and _optional(body):
                body["required"] = False
            responses = operation.setdefault("responses", {})
            declared = {int(status) for status in responses if status[0] in "45"}
            for status in [s for s in responses if s[0] in "45"]:
                del responses[status]
            for status in sorted(statuses(method, path, operation, declared)):
                responses[str(status)] = {
                    "description": DESCRIPTIONS[status],
                    "content": {"application/json": {"schema": ENVELOPE_REF}},
                }
            if path == "/metrics":
                ok = responses.get("200", {})
                ok["content"] = {"text/plain": {"schema": {"type": "string"}}}
    _merge_same_shape(schema.get("paths", {}))
    return schema


_PARAM = re.compile(r"\{([^}]+)\}")


def _merge_same_shape(paths: dict[str, Any]) -> None:
    """Two paths that differ only in a parameter's name are one resource on the wire (and one `Allow`):
    list them once, the parameter named for both (`/gifts/{code}` GET and `/gifts/{gift_id}` DELETE
    become `/gifts/{codeOrGiftId}`; each operation's own description says which one it takes)."""
    first: dict[str, str] = {}
    for path in list(paths):
        shape = _PARAM.sub("{}", path)
        if shape not in first:
            first[shape] = path
            continue
        target = first[shape]
        names = list(zip(_PARAM.findall(target), _PARAM.findall(path), strict=True))
        both = {old: _joined(old, other) for old, other in names} | {
            other: _joined(old, other) for old, other in names
        }
        merged = target
        for old, _ in names:
            merged = merged.replace("{" + old + "}", "{" + both[old] + "}")
        operations = {**paths.pop(target), **paths.pop(path)}
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter.get("name") in both:
                    parameter["name"] = both[parameter["name"]]
        paths[merged] = operations
        first[shape] = merged


def _joined(one: str, other: str) -> str:
    if one == other:
        return one
    camel = "".join(part.capitalize() for part in other.split("_"))
    return f"{one}Or{camel}"


def _optional(body: dict[str, Any]) -> bool:
    """A body declared `X | None = None`: Litestar says required, the handler takes none."""
    schema = body.get("content", {}).get("application/json", {}).get("schema", {})
    return any(option.get("type") == "null" for option in schema.get("oneOf", []))
