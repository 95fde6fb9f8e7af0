"""Errors are data: each class carries its status and code; one handler renders the envelope
{statusCode, message, code, details}."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException

log = logging.getLogger("mana_credits.errors")


class CreditsError(Exception):
    status: int = 400
    code: str = "bad_request"
    message: str = "Bad request"

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None) -> None:
        self.message = message or type(self).message
        self.details = details
        super().__init__(self.message)


class ValidationFailed(CreditsError):
    status = 400
    code = "validation_error"
    message = "Invalid request"


class Unauthorized(CreditsError):
    status = 401
    code = "unauthorized"
    message = "Unauthorized"


class Forbidden(CreditsError):
    status = 403
    code = "forbidden"
    message = "Forbidden"


class NotFound(CreditsError):
    status = 404
    code = "not_found"
    message = "Not found"


class Conflict(CreditsError):
    status = 409
    code = "conflict"
    message = "Conflict"


class InsufficientCredits(CreditsError):
    status = 402
    code = "insufficient_credits"
    message = "Insufficient credits"

    def __init__(self, required: int, available: int) -> None:
        super().__init__(details={"required": required, "available": available})
        self.required = required
        self.available = available


class IdempotencyKeyReused(CreditsError):
    status = 409
    code = "idempotency_key_reused"
    message = "Idempotency key was already used with different parameters"


class TooManyRequests(CreditsError):
    status = 429
    code = "rate_limited"
    message = "Too many requests"

    def __init__(self, message: str | None = None, *, retry_after: int = 60) -> None:
        super().__init__(message, details={"retryAfter": retry_after})
        self.retry_after = retry_after


class NotReady(CreditsError):
    """/ready: the database does not answer."""

    status = 503
    code = "not_ready"
    message = "Database unavailable"


def envelope(status: int, message: str, code: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"statusCode": status, "message": message, "code": code}
    if details is not None:
        body["details"] = details
    return body


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(content=body, status_code=status, media_type=MediaType.JSON, headers=headers)


def handle_credits_error(_: Request[Any, Any, Any], exc: CreditsError) -> Response[Any]:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else None
    return _json(exc.status, envelope(exc.status, exc.message, exc.code, exc.details), headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def handle_http_exception(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status >= 500:
        log.error("http error %s: %s", status, exc.detail)
        return _json(status, envelope(status, "Internal server error", "internal_error"))
    if isinstance(exc, ValidationException) or status == 400:
        details = _validation_details(exc.extra)
        message = exc.detail if exc.detail and exc.detail != "Bad Request" else "Invalid request"
        return _json(400, envelope(400, message, "validation_error", details))
    return _json(status, envelope(status, exc.detail, _HTTP_CODES.get(status, "error")), exc.headers)


def _validation_details(extra: Any) -> dict[str, Any] | None:
    if isinstance(extra, list) and extra:
        fields = [
            {
                "field": item.get("key") or "body",
                "message": item.get("message", ""),
                "source": item.get("source"),
            }
            if isinstance(item, dict)
            else {"field": "body", "message": str(item)}
            for item in extra
        ]
        return {"fields": fields}
    return None


def handle_unstorable_value(request: Request[Any, Any, Any], exc: asyncpg.DataError) -> Response[Any]:
    """PostgreSQL refused a value we passed it (a NUL character, a number beyond the column's range):
    the input was bad, not the service. Say so without echoing SQL."""
    log.warning("value refused by the database on %s %s: %s", request.method, request.url.path, exc)
    return _json(
        400,
        envelope(
            400,
            "A value in the request cannot be stored (out of range or invalid characters)",
            "validation_error",
        ),
    )


# The database is gone or going (stopped, restarting, network down, a statement past its timeout). These
# say nothing about the request, and the transaction rolled back: 503 so that the caller retries.
DATABASE_UNAVAILABLE = (
    OSError,  # connection refused, no socket file, broken pipe
    TimeoutError,  # connect, acquire or statement timeout
    asyncpg.PostgresConnectionError,  # closed mid-operation, cannot connect now
    asyncpg.InterfaceError,  # "the underlying connection is closed" (other interface errors are bugs: 500)
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    # asyncpg's protocol left mid-operation when the server vanished ("cannot switch to state …")
    asyncpg.exceptions.InternalClientError,
    # 25006: the connection is on a standby (an old primary after a failover); it is dropped below.
    asyncpg.exceptions.ReadOnlySQLTransactionError,
)


def handle_database_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, asyncpg.InterfaceError) and "closed" not in str(exc):
        return handle_unexpected(request, exc)
    log.warning("database unavailable on %s %s: %r", request.method, request.url.path, exc)
    if isinstance(exc, asyncpg.exceptions.ReadOnlySQLTransactionError):
        # Every pooled connection may be on the demoted node: reconnect them (to the primary, as the URL's
        # target_session_attrs asks) instead of failing each request on them in turn.
        pool = getattr(request.app.state, "ctx", None) and request.app.state.ctx.pool
        if pool is not None:
            asyncio.get_running_loop().create_task(pool.expire_connections())
    return _json(
        503,
        envelope(503, "The service is briefly unavailable; retry shortly", "service_unavailable"),
        headers={"Retry-After": "2"},
    )


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # Never leak a stack trace or SQL to the caller; the log has it.
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _json(500, envelope(500, "Internal server error", "internal_error"))


EXCEPTION_HANDLERS: dict[Any, Any] = {
    CreditsError: handle_credits_error,
    HTTPException: handle_http_exception,
    asyncpg.DataError: handle_unstorable_value,
    **dict.fromkeys(DATABASE_UNAVAILABLE, handle_database_unavailable),
    Exception: handle_unexpected,
}


def handler_for(exc: Exception) -> Any:
    """The handler of EXCEPTION_HANDLERS that Litestar picks for `exc`: the one of its nearest class."""
    return next(EXCEPTION_HANDLERS[cls] for cls in type(exc).__mro__ if cls in EXCEPTION_HANDLERS)
