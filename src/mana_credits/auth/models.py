from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AuthUser:
    """A user verified from a mana-auth JWT."""

    id: str
    email: str | None
    name: str | None
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


# The app of a shared-key caller that sends no X-App-Id (its idempotency scope).
UNNAMED_APP = "unknown"


@dataclass(frozen=True, slots=True)
class ServiceCaller:
    """Another backend, identified by its service key (per-app key) or its X-App-Id header."""

    app_id: str
    per_app_key: bool

    def app_or(self, default: str) -> str:
        """The caller's app, or what the old service wrote when a caller named none (`default`)."""
        return default if self.app_id == UNNAMED_APP else self.app_id
