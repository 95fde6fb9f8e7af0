"""Everything a request handler or background job needs, built once per process."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import httpx

from mana_credits.auth.jwt import JwtVerifier
from mana_credits.config import Settings
from mana_credits.kit.batching import Batcher
from mana_credits.kit.clock import Clock
from mana_credits.kit.standby import StandbyReads
from mana_credits.ledger.fraction_commit import FractionCommit
from mana_credits.ledger.group import GroupCommit
from mana_credits.ledger.schemas import Balance
from mana_credits.payments.stripe_client import StripeGateway


@dataclass
class AppContext:
    settings: Settings
    pool: asyncpg.Pool
    clock: Clock
    http: httpx.AsyncClient
    verifier: JwtVerifier
    # Balance reads and the sync status, answered by a standby while the primary is away (kit.standby).
    standby_reads: StandbyReads
    # People's own balance reads, sharing one query when they arrive together (credits.service).
    balance_reads: Batcher[str, Balance]
    # DATABASE_READ_URL's pool, else None. Only reads that may lag a moment behind a write go there
    # (a user's own balance and history); see `reader`.
    read_pool: asyncpg.Pool | None = None
    # The keyless debits of this process, sent together (ledger.group); None with GROUP_COMMIT off.
    group_commit: GroupCommit | None = None
    # Its keyless fractional charges, decided together (ledger.fraction_commit); None with GROUP_COMMIT off.
    fraction_commit: FractionCommit | None = None
    # The Stripe client, made with the first payment (payments.stripe_client.gateway: the SDK is large, and
    # a worker that takes no payment never loads it).
    stripe: StripeGateway | None = None

    @property
    def reader(self) -> asyncpg.Pool:
        """The pool for lag-tolerant reads: the read replica when configured, else the primary."""
        return self.read_pool or self.pool

    async def close(self) -> None:
        if self.group_commit is not None:
            await self.group_commit.aclose()
        if self.fraction_commit is not None:
            await self.fraction_commit.aclose()
        if self.stripe is not None:
            await self.stripe.aclose()
        await self.pool.close()
        if self.read_pool is not None:
            await self.read_pool.close()
        await self.standby_reads.close()
        await self.http.aclose()
