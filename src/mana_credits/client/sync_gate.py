"""The sync gate: is a user's Cloud Sync paid for? A cached checker and an ASGI middleware.

- Answers are cached `ttl` seconds (5 minutes) in a bounded LRU; concurrent misses for one user share
  one request.
- Fail open: when the credits service is unreachable or answers 5xx, users pass (logged) and, for
  `fail_open_ttl` seconds, no request is tried at all — an outage costs one timeout, not one per request.
  Cached answers stay valid meanwhile. A 400 `validation_error` concerns that one user id: it passes, and
  that answer is cached for `fail_open_ttl`.
- Anything else is a misconfiguration: 401/403 (wrong service key), 404 or any answer that is not the
  status body (wrong URL). Logged at ERROR and, with `strict_auth` (default), raised as
  `SyncGateConfigError` so it cannot go unnoticed; otherwise it fails open like an outage.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

import httpx

from mana_credits.client.errors import SyncGateConfigError

log = logging.getLogger("mana_credits.client.sync_gate")

SYNC_INACTIVE_BODY = {
    "error": "sync_inactive",
    "message": "Cloud Sync ist nicht aktiv. Aktiviere Sync in den Einstellungen.",
}
# Close code for a refused WebSocket when the server cannot send an HTTP denial response.
WS_POLICY_VIOLATION = 1008

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
UserIdFromScope = Callable[[Scope], "str | Awaitable[str | None] | None"]


class SyncBillingChecker:
    def __init__(
        self,
        base_url: str,
        service_key: str,
        *,
        app_id: str = "mana-sync",
        ttl: float = 300.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        fail_open_ttl: float = 30.0,
        strict_auth: bool = True,
        timeout: float = 3.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.ttl = ttl
        self.max_entries = max_entries
        self.fail_open_ttl = fail_open_ttl
        self.strict_auth = strict_auth
        self._clock = clock
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            headers={"X-Service-Key": service_key, "X-App-Id": app_id},
            transport=transport,
        )
        self._cache: OrderedDict[str, tuple[bool, float]] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[bool]] = {}
        self._down_until = float("-inf")

    async def aclose(self) -> None:
        await self._http.aclose()

    def __len__(self) -> int:
        """How many answers are cached (never more than `max_entries`)."""
        return len(self._cache)

    async def is_active(self, user_id: str) -> bool:
        now = self._clock()
        cached = self._cache.get(user_id)
        if cached is not None:
            if cached[1] > now:
                self._cache.move_to_end(user_id)
                return cached[0]
            del self._cache[user_id]
        if now < self._down_until:
            return True
        task = self._inflight.get(user_id)
        if task is None:
            task = asyncio.ensure_future(self._load(user_id))
            self._inflight[user_id] = task
            task.add_done_callback(lambda _: self._inflight.pop(user_id, None))
        # Shielded: one waiter being cancelled must not cancel the shared request.
        return await asyncio.shield(task)

    async def _load(self, user_id: str) -> bool:
        try:
            response = await self._http.get(f"/api/v1/internal/sync/status/{quote(user_id, safe='')}")
        except httpx.HTTPError as exc:
            return self._fail_open(f"unreachable: {exc!r}")
        if response.status_code >= 500:
            return self._fail_open(f"answered {response.status_code}")
        active = _status_body(response)
        if response.status_code == 200 and active is not None:
            self._store(user_id, active, self.ttl)
            return active
        if response.status_code == 400 and _is_validation_error(response):
            # Our service refused this user id: that one user passes, for a short while.
            log.warning("sync gate letting %r pass: status answered 400", user_id)
            self._store(user_id, True, self.fail_open_ttl)
            return True
        # 401/403 (wrong key), 404 or a body that is not the status (wrong URL): a misconfiguration.
        message = f"credits service answered {response.status_code} without a sync status"
        hint = "MANA_SERVICE_KEY" if response.status_code in (401, 403) else "the credits service URL"
        log.error("SYNC GATE MISCONFIGURED: %s — check %s", message, hint)
        if self.strict_auth:
            raise SyncGateConfigError(message, status=response.status_code, code="misconfigured")
        return self._fail_open(message)

    def _fail_open(self, reason: str) -> bool:
        log.warning("sync gate failing open for %.0fs: credits service %s", self.fail_open_ttl, reason)
        self._down_until = self._clock() + self.fail_open_ttl
        return True

    def _store(self, user_id: str, active: bool, ttl: float) -> None:
        self._cache[user_id] = (active, self._clock() + ttl)
        self._cache.move_to_end(user_id)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _status_body(response: httpx.Response) -> bool | None:
    """`active` of a status body, or None when the body is not one."""
    body = _json(response)
    active = body.get("active") if isinstance(body, dict) else None
    return active if isinstance(active, bool) else None


def _is_validation_error(response: httpx.Response) -> bool:
    body = _json(response)
    return isinstance(body, dict) and body.get("code") == "validation_error"


class SyncGateMiddleware:
    """Answers 402 `sync_inactive` on gated paths for users without active Cloud Sync.

    `user_id_from_scope` (sync or async) returns the verified user id, or None to let the request through
    unchanged (authentication stays the host's job). Paths match a prefix exactly or as `prefix/...`.
    SSE is plain HTTP; a gated WebSocket gets the 402 as its handshake response when the server supports
    the `websocket.http.response` extension, else it is closed with 1008 before being accepted.
    """

    def __init__(
        self,
        app: ASGIApp,
        checker: SyncBillingChecker,
        user_id_from_scope: UserIdFromScope,
        gated_prefixes: tuple[str, ...] = ("/sync",),
    ) -> None:
        self.app = app
        self.checker = checker
        self.user_id_from_scope = user_id_from_scope
        self.gated_prefixes = tuple(prefix.rstrip("/") for prefix in gated_prefixes)

    def _gated(self, path: str) -> bool:
        return any(path == prefix or path.startswith(prefix + "/") for prefix in self.gated_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self._gated(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        user_id = self.user_id_from_scope(scope)
        if inspect.isawaitable(user_id):
            user_id = await user_id
        if user_id is None or await self.checker.is_active(user_id):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http":
            await _send_402(send, "http.response")
        else:
            await _refuse_websocket(scope, receive, send)


_BODY = json.dumps(SYNC_INACTIVE_BODY, ensure_ascii=False).encode()
_HEADERS = [
    (b"content-type", b"application/json; charset=utf-8"),
    (b"content-length", str(len(_BODY)).encode()),
]


async def _send_402(send: Send, kind: str) -> None:
    await send({"type": f"{kind}.start", "status": 402, "headers": _HEADERS})
    await send({"type": f"{kind}.body", "body": _BODY, "more_body": False})


async def _refuse_websocket(scope: Scope, receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await _send_402(send, "websocket.http.response")
    else:
        await send({"type": "websocket.close", "code": WS_POLICY_VIOLATION, "reason": "sync_inactive"})
