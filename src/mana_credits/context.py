"""Everything a request handler or background job needs, built once per process."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from mana_credits.auth.jwt import JwtVerifier
from mana_credits.config import Settings
from mana_credits.kit.clock import Clock
from mana_credits.kit.standby import StandbyReads


@dataclass
class AppContext:
    settings: Settings
    pool: asyncpg.Pool
    clock: Clock
    http: httpx.AsyncClient
    verifier: JwtVerifier
    # Balance reads and the sync status, answered by a standby while the primary is away (kit.standby).
    standby_reads: StandbyReads
    # DATABASE_READ_URL's pool, else None. Only reads that may lag a moment behind a write go there
    # (a user's own balance and history); see `reader`.
    read_pool: asyncpg.Pool | None = None
    # Per-domain singletons (e.g. the Stripe client) created lazily by their domain; closed on shutdown
    # when they have an `aclose()`.
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def reader(self) -> asyncpg.Pool:
        """The pool for lag-tolerant reads: the read replica when configured, else the primary."""
        return self.read_pool or self.pool
