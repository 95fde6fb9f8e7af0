"""Structured JSON logs with a request id on every line written while a request is handled."""

from __future__ import annotations

import contextvars
import logging
import sys
import uuid
from collections.abc import MutableMapping
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
# The calling service as it names itself (X-App-Id), for internal calls; absent for browsers.
calling_app: contextvars.ContextVar[str | None] = contextvars.ContextVar("calling_app", default=None)

HEADER = b"x-request-id"
APP_HEADER = b"x-app-id"


def _add_request_id(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    rid = request_id.get()
    if rid is not None:
        event["request_id"] = rid
    app = calling_app.get()
    if app is not None:
        event["app"] = app
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


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Take the caller's X-Request-Id (or make one), expose it to logs, echo it on the response."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        rid = headers.get(HEADER, b"").decode("latin-1")[:100] or uuid.uuid4().hex
        token = request_id.set(rid)
        app_token = calling_app.set(headers.get(APP_HEADER, b"").decode("latin-1")[:100] or None)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (HEADER, rid.encode("latin-1"))]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
            calling_app.reset(app_token)

    return middleware
