"""Typed errors of the client package. Nothing here ever pretends a user has credits."""

from __future__ import annotations

from typing import Any


class CreditsError(Exception):
    """The credits service refused the call; `status`, `code` and `details` are from its error body."""

    def __init__(
        self, message: str, *, status: int | None = None, code: str | None = None, details: Any = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details


class InsufficientCredits(CreditsError):
    def __init__(self, required: int, available: int, message: str = "Insufficient credits") -> None:
        super().__init__(
            message,
            status=402,
            code="insufficient_credits",
            details={"required": required, "available": available},
        )
        self.required = required
        self.available = available


class CreditsUnavailable(CreditsError):
    """The service could not be reached or answered 5xx, after all retries."""


class AuthError(CreditsError):
    """401/403: the service key (or app id) is wrong — a configuration error, not a user's fault."""


class SyncGateConfigError(AuthError):
    """The sync gate's service key was refused; raised so a misconfigured gate is loud, not silent."""
