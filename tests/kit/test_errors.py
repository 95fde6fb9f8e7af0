"""Every error, ours or the framework's, renders as {statusCode, message, code, details?}."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from litestar import Request
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException

from mana_credits.kit.errors import (
    Conflict,
    CreditsError,
    Forbidden,
    IdempotencyKeyReused,
    InsufficientCredits,
    NotFound,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
    envelope,
    handle_credits_error,
    handle_http_exception,
)

SCOPE = {"type": "http", "method": "GET", "path": "/x", "headers": [], "query_string": b""}
# The handlers do not read the request; a minimal scope stands in for a full ASGI one.
REQUEST: Request[Any, Any, Any] = Request(scope=SCOPE)  # type: ignore[arg-type]


def body_of(response: Any) -> Any:
    return msgspec.json.decode(msgspec.json.encode(response.content))


def test_envelope_leaves_out_empty_details() -> None:
    assert envelope(404, "Nope", "not_found") == {"statusCode": 404, "message": "Nope", "code": "not_found"}
    assert envelope(400, "Bad", "validation_error", {"a": 1})["details"] == {"a": 1}


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ValidationFailed(), 400, "validation_error"),
        (Unauthorized(), 401, "unauthorized"),
        (Forbidden(), 403, "forbidden"),
        (NotFound("Gift not found"), 404, "not_found"),
        (Conflict(), 409, "conflict"),
        (IdempotencyKeyReused(), 409, "idempotency_key_reused"),
        (InsufficientCredits(required=10, available=3), 402, "insufficient_credits"),
    ],
)
def test_domain_errors_render_their_status_and_code(error: CreditsError, status: int, code: str) -> None:
    response = handle_credits_error(REQUEST, error)
    body = body_of(response)
    assert response.status_code == status and body["statusCode"] == status and body["code"] == code
    assert body["message"] == error.message


def test_insufficient_credits_carries_the_numbers() -> None:
    body = body_of(handle_credits_error(REQUEST, InsufficientCredits(required=10, available=3)))
    assert body["details"] == {"required": 10, "available": 3}


def test_rate_limit_sets_retry_after() -> None:
    response = handle_credits_error(REQUEST, TooManyRequests(retry_after=17))
    assert response.status_code == 429 and response.headers["Retry-After"] == "17"
    assert body_of(response)["details"] == {"retryAfter": 17}


def test_framework_errors_get_our_codes() -> None:
    assert body_of(handle_http_exception(REQUEST, NotAuthorizedException()))["code"] == "unauthorized"
    assert (
        body_of(handle_http_exception(REQUEST, HTTPException(status_code=405)))["code"]
        == "method_not_allowed"
    )
    invalid = handle_http_exception(
        REQUEST, ValidationException(extra=[{"key": "amount", "message": "Expected `int`", "source": "body"}])
    )
    body = body_of(invalid)
    assert invalid.status_code == 400 and body["code"] == "validation_error"
    assert body["details"] == {"fields": [{"field": "amount", "message": "Expected `int`", "source": "body"}]}


def test_server_errors_do_not_leak_their_detail() -> None:
    response = handle_http_exception(REQUEST, HTTPException(status_code=500, detail="secret stack"))
    assert response.status_code == 500
    assert body_of(response) == {
        "statusCode": 500,
        "message": "Internal server error",
        "code": "internal_error",
    }
