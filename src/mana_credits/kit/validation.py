"""Small input checks shared by the domains (path ids, bodies)."""

from __future__ import annotations

from typing import Any, TypeVar
from uuid import UUID

import msgspec

from mana_credits.kit.errors import ValidationFailed

T = TypeVar("T")


def parse_uuid(value: str, field: str = "id") -> UUID:
    try:
        return UUID(value)
    except ValueError as exc:
        raise ValidationFailed(
            f"{field} must be a UUID", details={"fields": [{"field": field, "message": "not a UUID"}]}
        ) from exc


def decode_body(raw: bytes, type_: type[T], *, optional: bool = False) -> T:
    """Decode a JSON body strictly; an empty body is `{}` when the body is optional."""
    if not raw.strip():
        if not optional:
            raise ValidationFailed("Request body is required")
        raw = b"{}"
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(str(exc), details={"fields": [_field_of(exc)]}) from exc
    except msgspec.DecodeError as exc:
        raise ValidationFailed("Malformed JSON body") from exc


def _field_of(exc: msgspec.ValidationError) -> dict[str, Any]:
    message = str(exc)
    _, _, path = message.rpartition(" - at `")
    return {"field": path.rstrip("`").removeprefix("$.") if path else "body", "message": message}
