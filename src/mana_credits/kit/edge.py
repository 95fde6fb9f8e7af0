"""The one middleware every request passes in and out: its request id (for the logs, echoed in
`X-Request-Id`), the security headers of the response (kit.headers) and the HTTP metrics (kit.metrics).

One layer, not one per concern: each ASGI layer adds frames to the request and to each of its sends,
11-17 µs a layer on this service's hosts (a tenth of a `/health` answer; bench/README.md).
"""

from __future__ import annotations

import time

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from mana_credits.kit import headers, logs, metrics


def edge_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        request_id, token = logs.enter_request(scope["headers"])
        method, path = scope["method"], scope.get("path_template", scope["path"])
        metrics.request_started(method, path)
        status, seconds, start = 200, 0.0, time.perf_counter()

        async def send_out(message: Message) -> None:
            nonlocal status, seconds
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *headers.secured(scope, message.get("headers", [])),
                    (logs.HEADER, request_id.encode("latin-1")),
                ]
            elif message["type"] == "http.response.body":
                seconds = time.perf_counter() - start
            await send(message)

        try:
            await app(scope, receive, send_out)
        finally:
            metrics.request_finished(method, path, status, seconds)
            logs.leave_request(token)

    return middleware
