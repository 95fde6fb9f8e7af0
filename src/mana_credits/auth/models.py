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


@dataclass(frozen=True, slots=True)
class ServiceCaller:
    """Another backend, identified by its service key (per-app key) or its X-App-Id header."""

    app_id: str
    per_app_key: bool
