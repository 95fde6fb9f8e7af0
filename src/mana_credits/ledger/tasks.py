"""Background jobs of the ledger (see kit.jobs): the invariant audit, exported as a metric.

One replica audits at a time (a try-lock: the others skip that round); the offender count goes to
`mana_credits_audit_offenders`, the names to the log (`mana-credits audit --fix-report` says what to do).
"""

from __future__ import annotations

import logging
import time

from mana_credits.context import AppContext
from mana_credits.db import locks
from mana_credits.kit import money_metrics
from mana_credits.kit.jobs import Job
from mana_credits.ledger.audit import audit

log = logging.getLogger("mana_credits.ledger")

AUDIT_INTERVAL_SECONDS = 6 * 3600.0
METRICS_INTERVAL_SECONDS = 15.0


def jobs(ctx: AppContext) -> list[Job]:
    async def run_audit() -> int | None:
        async with ctx.pool.acquire() as conn:
            if not await locks.session_try_lock(conn, locks.AUDIT):
                return None
            try:
                offenders = await audit(conn)
            finally:
                await locks.session_unlock(conn, locks.AUDIT)
        money_metrics.AUDIT_OFFENDERS.set(len(offenders))
        money_metrics.AUDIT_LAST_RUN.set(time.time())
        for offender in offenders[:20]:
            log.error("ledger invariant violated for %s: %s", offender.user_id, "; ".join(offender.problems))
        return len(offenders)

    return [
        Job("ledger.audit", AUDIT_INTERVAL_SECONDS, run_audit),
        Job("metrics.sample", METRICS_INTERVAL_SECONDS, lambda: money_metrics.sample(ctx.pool)),
    ]
