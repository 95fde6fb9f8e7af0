"""Small input checks shared by the domains (path ids, bodies)."""

from __future__ import annotations

import functools
import json
from typing import Annotated, Any, TypeVar
from uuid import UUID

import msgspec
import msgspec.inspect
from litestar import Request
from litestar.handlers import HTTPRouteHandler
from litestar.params import Parameter

from mana_credits.kit.errors import ValidationFailed

T = TypeVar("T")

# What a body that is not JSON raises in msgspec: a syntax error, nesting deeper than the C stack allows,
# bytes that are not UTF-8. Each is the same 400, on the lanes as on the routes.
MALFORMED = (msgspec.DecodeError, RecursionError, UnicodeDecodeError)

# One rule for user ids, wherever they come from (body, path, token subject).
MAX_USER_ID = 255

# One e-mail rule for the server and the published schema. Explicit character classes, because regex
# engines disagree on what `\s` covers (Python counts \x1c-\x1f as space, ECMA does not).
EMAIL_SPACE = r"[ \t\r\n]"
EMAIL = r"[^@\x00-\x20\x7f-\x9f]+@[^@\x00-\x20\x7f-\x9f]+\.[^@\x00-\x20\x7f-\x9f]+"
# What a URL may not contain: control characters and every character Python counts as space, spelled out
# so that the published schema (ECMA regex) and the server refuse exactly the same.
URL_FORBIDDEN = r"\x00-\x20\x7f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_USER_ID)]
UserIdParam = Annotated[str, Parameter(min_length=1, max_length=MAX_USER_ID)]


def parse_uuid(value: str, field: str = "id") -> UUID:
    try:
        return UUID(value)
    except ValueError as exc:
        raise ValidationFailed(
            f"{field} must be a UUID", details={"fields": [{"field": field, "message": "not a UUID"}]}
        ) from exc


def _field_of(exc: msgspec.ValidationError) -> dict[str, Any]:
    """msgspec says `... - at `$.a.b`` for a bad value and `missing required field `x`` for an absent one."""
    message = str(exc)
    head, _, at = message.partition(" - at `$")
    path = at.rstrip("`").lstrip(".")
    _, missing, name = head.partition("missing required field `")
    if missing:
        path = f"{path}.{name.rstrip('`')}" if path else name.rstrip("`")
    return {"field": path or "body", "message": message}


def _with_allowed_values(message: str, annotation: Any, path: str) -> str:
    """`Invalid enum value 'weekly'` alone leaves the caller guessing: name the values that are allowed."""
    if not message.startswith("Invalid enum value"):
        return message
    info: Any = _not_none(msgspec.inspect.type_info(annotation))
    for name in path.split("."):
        if not isinstance(info, msgspec.inspect.StructType):
            return message
        info = _not_none(next((f.type for f in info.fields if f.encode_name == name), None))
    if isinstance(info, msgspec.inspect.EnumType):
        allowed = ", ".join(repr(member.value) for member in info.cls)
        head, sep, at = message.partition(" - at ")
        return f"{head} (allowed: {allowed}){sep}{at}"
    return message


def _not_none(info: Any) -> Any:
    """`X | None` → X (the type a present value must have)."""
    if isinstance(info, msgspec.inspect.UnionType):
        rest = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        return rest[0] if len(rest) == 1 else info
    return info


@functools.cache
def _strict_body(handler: HTTPRouteHandler) -> tuple[msgspec.json.Decoder[Any], Any, bool] | None:
    """The strict decoder of a handler's `data` struct, its type and whether the body may be empty; None
    for a handler without a struct body. Once per handler: the answer does not change."""
    field = handler.parsed_data_field
    if field is None:
        return None
    candidates = (field.annotation, *(inner.annotation for inner in field.inner_types))
    if not any(isinstance(t, type) and issubclass(t, msgspec.Struct) for t in candidates):
        return None
    return msgspec.json.Decoder(field.annotation), field.annotation, field.is_optional


async def strict_json_body(request: Request[Any, Any, Any]) -> None:
    """App-wide `before_request`: validate a JSON body strictly against the handler's `data` struct.

    Litestar converts bodies leniently (`"5"` becomes 5); money amounts must not be guessed, so a wrong
    type, a missing field or malformed JSON is a 400 here, naming the field, before the handler runs.
    """
    strict = _strict_body(request.route_handler)
    if strict is None:
        return
    decoder, annotation, optional = strict
    raw = await request.body()
    if not raw.strip():
        if optional:
            return
        raise ValidationFailed("Request body is required", details={"fields": [{"field": "body"}]})
    try:
        decoder.decode(raw)
    except msgspec.ValidationError as exc:
        if not _valid_with_integral_floats(raw, annotation):
            field = _field_of(exc)
            field["message"] = message = _with_allowed_values(field["message"], annotation, field["field"])
            raise ValidationFailed(message, details={"fields": [field]}) from exc
    except MALFORMED as exc:
        raise malformed() from exc
    check_text(raw, field_names(annotation))


def malformed() -> ValidationFailed:
    return ValidationFailed("Malformed JSON body", details={"fields": [{"field": "body"}]})


def check_text(raw: bytes, names: tuple[bytes, ...]) -> None:
    """What decoding into a struct does not see: bytes that are not UTF-8 in a field the struct ignores,
    and a key given twice."""
    try:
        raw.decode()
    except UnicodeDecodeError as exc:
        raise malformed() from exc
    named_twice = repeated_key(raw, names)
    if named_twice is not None:
        raise ValidationFailed(
            f"Field `{named_twice}` is given twice", details={"fields": [{"field": named_twice}]}
        )


@functools.cache
def field_names(annotation: Any) -> tuple[bytes, ...]:
    """Every field name of a body's structs, as it appears quoted in JSON (for `repeated_key`)."""
    names: set[bytes] = set()

    def walk(info: Any) -> None:
        if isinstance(info, msgspec.inspect.StructType):
            for field in info.fields:
                names.add(f'"{field.encode_name}"'.encode())
                walk(field.type)
        elif isinstance(info, msgspec.inspect.UnionType):
            for option in info.types:
                walk(option)
        elif isinstance(info, msgspec.inspect.ListType):
            walk(info.item_type)

    walk(msgspec.inspect.type_info(annotation))
    return tuple(sorted(names))


def repeated_key(raw: bytes, names: tuple[bytes, ...]) -> str | None:
    """A key some object of the body names twice, else None. JSON leaves duplicates undefined: we would
    take the last (`"amount":1,"amount":2` charges 2) where a proxy or log may read the first, so such a
    body is refused. Cheap on the hot path: only a body that holds a field name twice, or an escape that
    could spell one, is parsed a second time."""
    if b"\\u" not in raw and not any(raw.count(name) > 1 for name in names):
        return None
    twice: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> None:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                twice.append(key)
            seen.add(key)

    try:
        json.loads(raw, object_pairs_hook=pairs)
    except (ValueError, RecursionError):  # msgspec accepted it; the stdlib's limits are not ours
        return None
    return twice[0] if twice else None


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral(item) for item in value]
    return value


def _valid_with_integral_floats(raw: bytes, annotation: Any) -> bool:
    """JSON has one number type: `1.0` is the integer 1 (JSON Schema agrees), `1.5` is not."""
    try:
        msgspec.convert(_integral(msgspec.json.decode(raw)), annotation, strict=True)
    except (msgspec.ValidationError, *MALFORMED):
        return False
    return True
