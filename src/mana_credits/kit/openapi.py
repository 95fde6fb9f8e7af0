"""Make the generated OpenAPI document true: every error is our envelope, and each operation lists the
statuses it really answers (Litestar documents only a 400 with its own error shape)."""

from __future__ import annotations

import copy
import re
import zoneinfo
from typing import Any

from mana_credits.kit.validation import EMAIL, EMAIL_SPACE, URL_FORBIDDEN

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

# Statuses beyond the automatic ones (400 for input, 413 for a body, 401/403 by route group, 503 for the
# database, 409 for a reused Idempotency-Key), from the errors each operation raises.
_WRITE = {409}
EXTRA: dict[str, set[int]] = {
    "POST /api/v1/credits/use": {402},
    "POST /api/v1/internal/credits/use": {402},
    "POST /api/v1/internal/credits/refund": {404},
    "POST /api/v1/internal/credits/reserve": {402},
    "POST /api/v1/internal/credits/commit": {402, 404},
    "POST /api/v1/internal/credits/refund-reservation": {404},
    "GET /api/v1/credits/purchase/{purchase_id}": {404},
    "POST /api/v1/credits/purchase": {404, 502},
    "GET /api/v1/gifts/{code}": {404, 429},
    "POST /api/v1/gifts": {402, 429},
    "POST /api/v1/gifts/{code}/redeem": {403, 404, 410, 429},
    "DELETE /api/v1/gifts/{gift_id}": {404, 429},
    "POST /api/v1/sync/activate": {402},
    "POST /api/v1/admin/sync/{user_id}/gift": set(),
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


# As gifts.service checks it (surrounding spaces are trimmed first).
EMAIL_PATTERN = f"^{EMAIL_SPACE}*{EMAIL}{EMAIL_SPACE}*$"
BLANK = f"^{EMAIL_SPACE}*$"
UUID_PATTERN = "^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
_UUID = {"type": "string", "format": "uuid", "pattern": UUID_PATTERN}
# Strings the handlers parse as UUIDs (path parameters and body fields).
UUID_FIELDS = {"gift_id", "purchase_id", "transactionId", "reservationId", "packageId"}


# Fields where an empty string means "none" (the old clients send it).
EMPTY_MEANS_NONE = {("InternalRefund", "transactionId")}


def _uuid_fields(schema: dict[str, Any]) -> None:
    for title, component in schema.get("components", {}).get("schemas", {}).items():
        for name, prop in component.get("properties", {}).items():
            if (title, name) in EMPTY_MEANS_NONE:
                prop.pop("oneOf", None)
                prop.update(
                    {
                        "type": ["string", "null"],
                        "pattern": f"^$|{UUID_PATTERN}",
                        "description": "UUID or empty",
                    }
                )
                continue
            if name in UUID_FIELDS:
                prop.update({k: v for k, v in _UUID.items() if k != "type"})
                if prop.get("type") == "string" or ("type" not in prop and "oneOf" not in prop):
                    prop["type"] = "string"
            for option in prop.get("oneOf", []):
                if name in UUID_FIELDS and option.get("type") == "string":
                    option.update(_UUID)


# Litestar drops a lower bound of 0 (falsy): these fields and parameters have one.
ZERO_MINIMUM = {("Commit", "amount")}
ZERO_MINIMUM_PARAMETERS = {"offset"}


def _zero_minimums(schemas: dict[str, Any]) -> None:
    for component, field in ZERO_MINIMUM:
        prop = schemas.get(component, {}).get("properties", {}).get(field)
        if prop is not None:
            prop["minimum"] = 0


# books.service's calendar month, YYYY-MM of the years 1970-2999.
MONTH = r"^(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])$"


def _parameters(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        if parameter.get("name") in ZERO_MINIMUM_PARAMETERS:
            parameter.setdefault("schema", {})["minimum"] = 0
        if parameter.get("name") in UUID_FIELDS:
            parameter["schema"] = dict(_UUID)
        elif (
            parameter.get("name") == "month"
        ):  # the statement's, optional to Litestar so the guard answers first
            parameter.update(required=True, schema={"type": "string", "pattern": MONTH})
        elif parameter.get("name") == "tz":  # any IANA zone name
            parameter["schema"] = {"type": "string", "enum": sorted(zoneinfo.available_timezones()),
                                   "default": "UTC"}  # fmt: skip


def statuses(method: str, path: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses this operation can answer."""
    name = f"{method.upper()} {path}"
    found = set(EXTRA.get(name, set()))
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


def document(schema: dict[str, Any], return_origins: list[str] | None = None) -> dict[str, Any]:
    """A copy of Litestar's OpenAPI dict with our error envelope and each operation's real statuses;
    `return_origins` are the origins checkout return URLs may point at."""
    schema = copy.deepcopy(schema)
    schema.setdefault("components", {}).setdefault("schemas", {})["ErrorEnvelope"] = ENVELOPE
    _uuid_fields(schema)
    _conditional_gift_email(schema["components"]["schemas"])
    _gift_aliases(schema["components"]["schemas"])
    _zero_minimums(schema["components"]["schemas"])
    _return_urls(schema["components"]["schemas"], return_origins or [])
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            if path == "/api/v1/webhooks/stripe":
                _webhook(operation)
            _parameters(operation)
            body = operation.get("requestBody")
            if body is not None and _optional(body):
                body["required"] = False
            responses = operation.setdefault("responses", {})
            for status in [s for s in responses if s[0] in "45"]:
                del responses[status]
            for status in sorted(statuses(method, path, operation)):
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


def _conditional_gift_email(schemas: dict[str, Any]) -> None:
    """targetEmail: required (an address) for a personalized gift, empty or absent for a simple one."""
    create = schemas.get("CreateGift")
    if create is None:
        return
    create["allOf"] = [
        {
            "if": {"properties": {"type": {"const": "personalized"}}, "required": ["type"]},
            "then": {"required": ["targetEmail"],
                     "properties": {"targetEmail": {"type": "string", "pattern": EMAIL_PATTERN}}},
            "else": {"properties": {"targetEmail": {"oneOf": [{"type": "null"},
                                                              {"type": "string", "pattern": BLANK}]}}},
        }
    ]  # fmt: skip


# The web app's spellings beside ours (gifts/schemas.py): what each alias means.
GIFT_ALIASES = {
    "CreateGift": {
        "totalCredits": "The gift's credits; required unless its alias `credits` is given.",
        "credits": "Alias of totalCredits (the web app); given with totalCredits, they must agree.",
        "expirationDays": "Days until the gift expires (default 90); or `expiresAt`, not both.",
        "expiresAt": "Alias for the expiry (the web app): an instant in the next 365 days, instead of "
        "expirationDays.",
    },
    "Gift": {"url": "Alias of shortUrl (the web app)."},
    "PublicGift": {"isPersonalized": "type is personalized (the web app)."},
    "RedeemResult": {
        "credits": "Alias of creditsReceived (the web app).",
        "newBalance": "The redeemer's balance after the gift (the web app).",
    },
    "Redemption": {
        "credits": "Alias of creditsReceived (the web app).",
        "redeemedAt": "Alias of createdAt (the web app).",
    },
}


def _gift_aliases(schemas: dict[str, Any]) -> None:
    """Describe the aliases; a gift needs totalCredits or credits (not null), and one way to expire."""
    for name, fields in GIFT_ALIASES.items():
        for field, description in fields.items():
            if name in schemas:
                schemas[name]["properties"][field]["description"] = description
    create = schemas.get("CreateGift")
    if create is None:
        return
    create.setdefault("allOf", []).extend(
        [
            {"anyOf": [{"required": [field], "properties": {field: {"type": "integer"}}}
                       for field in ("totalCredits", "credits")]},
            {"not": {"required": ["expiresAt", "expirationDays"],
                     "properties": {"expiresAt": {"type": "string"}, "expirationDays": {"type": "integer"}}}},
        ]
    )  # fmt: skip


def _optional(body: dict[str, Any]) -> bool:
    """A body declared `X | None = None`: Litestar says required, the handler takes none."""
    schema = body.get("content", {}).get("application/json", {}).get("schema", {})
    return any(option.get("type") == "null" for option in schema.get("oneOf", []))
