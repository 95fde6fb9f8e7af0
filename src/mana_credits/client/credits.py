"""`CreditsClient`: the internal credits API for other backends (async, httpx).

Every write carries an Idempotency-Key — the caller's, or one generated per logical call — and every retry
of that call sends the same key, so a retry after a lost response replays the first answer instead of
charging twice (`grant` is deduplicated by its reference id instead). Connection errors, timeouts and 5xx
are retried `retries` more times with exponential backoff, then raise `CreditsUnavailable`. There is no
fallback balance: a failure is an exception, never free credits.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from mana_credits.client.errors import AuthError, CreditsError, CreditsUnavailable, InsufficientCredits

log = logging.getLogger("mana_credits.client")

INTERNAL = "/api/v1/internal"


@dataclass(frozen=True, slots=True)
class Balance:
    balance: int
    total_earned: int
    total_spent: int
    reserved: int


@dataclass(frozen=True, slots=True)
class Charge:
    """The result of `consume` or `refund`: the ledger row and the balance right after it."""

    transaction_id: str
    balance: int
    replayed: bool


@dataclass(frozen=True, slots=True)
class Grant:
    transaction_id: str | None
    balance: int
    already_granted: bool


@dataclass(frozen=True, slots=True)
class SyncStatus:
    active: bool
    interval: str
    next_charge_at: str | None
    paused_at: str | None
    gifted: bool
    cancel_at_period_end: bool
    amount_charged: int | None


@dataclass(slots=True)
class Hold:
    """An open reservation inside `async with client.reserve(...)`; set `actual` to the real cost."""

    reservation_id: str
    amount: int
    balance: int
    expires_at: str
    description: str | None = None
    _actual: int | None = field(default=None, repr=False)

    @property
    def actual(self) -> int:
        return self.amount if self._actual is None else self._actual

    @actual.setter
    def actual(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= self.amount:
            raise ValueError(f"actual must be a whole number of credits in 0..{self.amount}")
        self._actual = value


class CreditsClient:
    def __init__(
        self,
        base_url: str,
        service_key: str,
        app_id: str,
        *,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.2,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.app_id = app_id
        self.retries = retries
        self.backoff = backoff
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            headers={"X-Service-Key": service_key, "X-App-Id": app_id},
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> CreditsClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # ---- credits ----

    async def consume(
        self,
        user_id: str,
        amount: int,
        description: str,
        idempotency_key: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Charge:
        """Charge `amount` credits; raises InsufficientCredits (402) or CreditsUnavailable."""
        body = {"userId": user_id, "amount": amount, "appId": self.app_id, "description": description}
        if metadata is not None:
            body["metadata"] = metadata
        response = await self._send("POST", "/credits/use", body, key=idempotency_key or _new_key())
        data = response.json()
        return Charge(
            transaction_id=data["transaction"]["id"],
            balance=data["newBalance"]["balance"],
            replayed=_replayed(response),
        )

    async def refund(
        self,
        user_id: str,
        amount: int,
        description: str,
        *,
        transaction_id: str | None = None,
        idempotency_key: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Charge:
        """Give credits back; with `transaction_id`, never more than that usage charged."""
        body: dict[str, Any] = {
            "userId": user_id,
            "amount": amount,
            "description": description,
            "appId": self.app_id,
        }
        if transaction_id is not None:
            body["transactionId"] = transaction_id
        if metadata is not None:
            body["metadata"] = metadata
        response = await self._send("POST", "/credits/refund", body, key=idempotency_key or _new_key())
        data = response.json()
        return Charge(
            transaction_id=data["transaction"]["id"],
            balance=data["newBalance"]["balance"],
            replayed=_replayed(response),
        )

    async def grant(self, user_id: str, amount: int, reason: str, reference_id: str) -> Grant:
        """Exactly once per (user_id, reference_id): a repeat answers `already_granted=True`."""
        body = {"userId": user_id, "amount": amount, "reason": reason, "referenceId": reference_id}
        data = (await self._send("POST", "/credits/grant", body)).json()
        return Grant(
            transaction_id=data.get("transactionId"),
            balance=data["newBalance"],
            already_granted=bool(data["alreadyGranted"]),
        )

    async def balance(self, user_id: str) -> Balance:
        data = (await self._send("GET", f"/credits/balance/{quote(user_id, safe='')}")).json()
        return Balance(
            balance=data["balance"],
            total_earned=data["totalEarned"],
            total_spent=data["totalSpent"],
            reserved=data["reserved"],
        )

    async def sync_status(self, user_id: str) -> SyncStatus:
        data = (await self._send("GET", f"/sync/status/{quote(user_id, safe='')}")).json()
        return SyncStatus(
            active=bool(data["active"]),
            interval=data.get("interval", "monthly"),
            next_charge_at=data.get("nextChargeAt"),
            paused_at=data.get("pausedAt"),
            gifted=bool(data.get("gifted", False)),
            cancel_at_period_end=bool(data.get("cancelAtPeriodEnd", False)),
            amount_charged=data.get("amountCharged"),
        )

    # ---- holds ----

    @asynccontextmanager
    async def reserve(
        self, user_id: str, amount: int, reason: str, ttl_seconds: int | None = None
    ) -> AsyncIterator[Hold]:
        """Hold `amount`; commit `hold.actual` (default: all) on success, release on any exception."""
        body: dict[str, Any] = {"userId": user_id, "amount": amount, "reason": reason}
        if ttl_seconds is not None:
            body["ttlSeconds"] = ttl_seconds
        data = (await self._send("POST", "/credits/reserve", body, key=_new_key())).json()
        hold = Hold(
            reservation_id=data["reservationId"],
            amount=amount,
            balance=data["balance"],
            expires_at=data["expiresAt"],
        )
        try:
            yield hold
        except BaseException:
            try:
                await self.release(hold.reservation_id)
            except CreditsError as exc:
                # The hold expires by itself; the caller's own error is what matters here.
                log.warning("could not release hold %s: %s", hold.reservation_id, exc)
            raise
        await self.commit(hold.reservation_id, hold.actual, hold.description)

    async def commit(
        self,
        reservation_id: str,
        amount: int | None = None,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> str | None:
        """Spend `amount` (default: all; 0 releases everything) of a hold; returns the transaction id."""
        body: dict[str, Any] = {"reservationId": reservation_id}
        if amount is not None:
            body["amount"] = amount
        if description is not None:
            body["description"] = description
        response = await self._send("POST", "/credits/commit", body, key=idempotency_key or _new_key())
        transaction_id: str | None = response.json()["transactionId"]
        return transaction_id

    async def release(self, reservation_id: str, idempotency_key: str | None = None) -> int:
        """Give a whole hold back; returns the balance afterwards."""
        body = {"reservationId": reservation_id}
        response = await self._send(
            "POST", "/credits/refund-reservation", body, key=idempotency_key or _new_key()
        )
        balance: int = response.json()["balance"]
        return balance

    # ---- transport ----

    async def _send(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, key: str | None = None
    ) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else None
        failure: CreditsError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = await self._http.request(method, INTERNAL + path, json=body, headers=headers)
            except httpx.TransportError as exc:
                failure = CreditsUnavailable(f"credits service unreachable: {exc!r}")
                log.warning("%s %s failed (attempt %d): %r", method, path, attempt + 1, exc)
                continue
            if response.status_code >= 500:
                failure = _error(response, CreditsUnavailable)
                log.warning("%s %s answered %d (attempt %d)", method, path, response.status_code, attempt + 1)
                continue
            if response.is_success:
                return response
            raise _refusal(response)
        assert failure is not None
        raise failure


def _new_key() -> str:
    return f"mc-{uuid.uuid4()}"


def _replayed(response: httpx.Response) -> bool:
    return bool(response.headers.get("Idempotent-Replayed") == "true")


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _error(response: httpx.Response, kind: type[CreditsError]) -> CreditsError:
    data = _body(response)
    return kind(
        str(data.get("message") or response.reason_phrase or "error"),
        status=response.status_code,
        code=data.get("code"),
        details=data.get("details"),
    )


def _refusal(response: httpx.Response) -> CreditsError:
    if response.status_code == 402:
        details = _body(response).get("details") or {}
        return InsufficientCredits(int(details.get("required", 0)), int(details.get("available", 0)))
    if response.status_code in (401, 403):
        return _error(response, AuthError)
    return _error(response, CreditsError)
