"""Structured JSON logs with a request id on every line written while a request is handled."""

from __future__ import annotations

import contextvars
import logging
import secrets
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

# The request id, and the calling service as it names itself (X-App-Id; absent for browsers), of the
# request being handled: every log line written meanwhile carries them.
_request: contextvars.ContextVar[tuple[str, str | None] | None] = contextvars.ContextVar(
    "request", default=None
)
RequestToken = contextvars.Token[tuple[str, str | None] | None]

HEADER = b"x-request-id"
APP_HEADER = b"x-app-id"


def enter_request(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str, RequestToken]:
    """Take the caller's X-Request-Id (or make one) and X-App-Id for the logs; returns the request id
    (echoed on the response by kit.edge) and the token that `leave_request` takes."""
    rid = app = b""
    for name, value in headers:
        if name == HEADER:
            rid = value
        elif name == APP_HEADER:
            app = value
    request_id = rid.decode("latin-1")[:100] or secrets.token_hex(16)
    return request_id, _request.set((request_id, app.decode("latin-1")[:100] or None))


def leave_request(token: RequestToken) -> None:
    _request.reset(token)


def _add_request_id(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    request = _request.get()
    if request is not None:
        event["request_id"] = request[0]
        if request[1] is not None:
            event["app"] = request[1]
    return event


def configure(*, json: bool = True, level: int = logging.INFO) -> None:
    """Route stdlib logging through structlog: JSON lines in production, readable lines in development."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                _add_request_id,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
