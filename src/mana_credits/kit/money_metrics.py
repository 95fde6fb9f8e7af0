"""Prometheus metrics about the money, beside the HTTP ones: what moved, what was refused, what waits.

Counters are bumped where the event happens (no extra query); gauges that need the database are sampled
by one background job per process (`sample`), never per request. Ages are exported as timestamps, so
PromQL computes `time() - …` and a stalled process cannot report a fresh age.
In multiprocess mode, sampled gauges take the largest live value and pool gauges add up live processes.
Defined with kit.metrics' classes, so an update costs no getpid.
"""

from __future__ import annotations

import time

import asyncpg

from mana_credits.kit import repository
from mana_credits.kit.metrics import Counter, Gauge, Histogram

DEBITED = Counter("mana_credits_debited_credits", "Credits taken from balances", ["app", "type"])
CREDITED = Counter("mana_credits_credited_credits", "Credits added to balances", ["app", "type"])
INSUFFICIENT = Counter("mana_credits_insufficient_credits", "Charges and holds refused (402)", ["app"])
HOLDS_EXPIRED = Counter("mana_credits_holds_expired", "Holds released by the expiry sweep")
WEBHOOK_EVENTS = Counter("mana_credits_webhook_events", "Stripe events received", ["type", "result"])
WEBHOOK_LAG = Histogram(
    "mana_credits_webhook_lag_seconds",
    "Arrival of a Stripe event behind its `created`",
    buckets=(1, 5, 15, 60, 300, 900, 3600, 6 * 3600, 24 * 3600, 3 * 24 * 3600),
)
JOB_LAST_SUCCESS = Gauge(
    "mana_credits_job_last_success_timestamp_seconds",
    "Last successful run per job",
    ["job"],
    multiprocess_mode="livemax",
)
JOB_FAILURES = Counter("mana_credits_job_failures", "Failed job runs", ["job"])
HOLDS_OPEN = Gauge("mana_credits_holds_open", "Open holds", multiprocess_mode="livemax")
OUTBOX_BACKLOG = Gauge(
    "mana_credits_outbox_backlog", "Emails waiting for delivery", multiprocess_mode="livemax"
)
OUTBOX_OLDEST = Gauge(
    "mana_credits_outbox_oldest_timestamp_seconds",
    "Creation time of the oldest undelivered email (0: none)",
    multiprocess_mode="livemax",
)
POOL_IN_USE = Gauge("mana_credits_db_pool_in_use", "Connections checked out", multiprocess_mode="livesum")
POOL_SIZE = Gauge("mana_credits_db_pool_size", "Connections open", multiprocess_mode="livesum")
AUDIT_OFFENDERS = Gauge(
    "mana_credits_audit_offenders",
    "Users violating the ledger invariant at the last audit",
    multiprocess_mode="livemax",
)
STRIPE_DISCREPANCIES = Gauge(
    "mana_credits_stripe_discrepancies",
    "Discrepancies with Stripe at the last reconciliation, by kind; state open (for a person) or fixed",
    ["kind", "state"],
    multiprocess_mode="livemax",
)
AUDIT_LAST_RUN = Gauge(
    "mana_credits_audit_last_run_timestamp_seconds",
    "When the last audit finished",
    multiprocess_mode="livemax",
)


# The `app` label takes a bounded set of values: an appId is the caller's choice (any signed-in user may
# send a new one with every request), and each new label value grows /metrics for good. The Mana apps and
# services that spend credits, the apps of MANA_SERVICE_KEYS and METRICS_APPS are named; any other appId
# counts as "other".
KNOWN_APPS: set[str] = {
    # this service's own entries
    "mana-credits", "sync", "gifts", "support",
    # the apps of the Mana monorepo (apps/)
    "api", "calc", "calendar", "cards", "chat", "citycorners", "contacts", "context", "docs", "food",
    "guides", "inventory", "mana", "manavoxel", "memoro", "moodlit", "mukke", "news", "photos", "picture",
    "plants", "presi", "questions", "quotes", "skilltree", "storage", "times", "todo", "traces", "uload",
    # its services that call the internal API
    "mana-ai", "mana-auth", "mana-analytics", "mana-research", "mana-sync", "mana-llm", "mana-image-gen",
    "mana-video-gen", "mana-stt", "mana-tts", "mana-voice-bot", "research",
}  # fmt: skip


def know_apps(names: list[str]) -> None:
    KNOWN_APPS.update(name for name in names if name)


def app_label(app_id: str | None) -> str:
    return app_id if app_id in KNOWN_APPS else "other"


def moved(amount: int, app_id: str, type_: str) -> None:
    """A ledger row of `amount` (negative: taken) was written."""
    if amount < 0:
        DEBITED.labels(app_label(app_id), type_).inc(-amount)
    elif amount > 0:
        CREDITED.labels(app_label(app_id), type_).inc(amount)


def refused(app_id: str, count: int = 1) -> None:
    """`count` charges or holds of this app were refused for want of credits (402)."""
    INSUFFICIENT.labels(app_label(app_id)).inc(count)


def job_succeeded(name: str) -> None:
    JOB_LAST_SUCCESS.labels(name).set(time.time())


async def sample(pool: asyncpg.Pool) -> None:
    """Refresh the gauges that need the database (one query) and the pool's own figures."""
    POOL_SIZE.set(pool.get_size())
    POOL_IN_USE.set(pool.get_size() - pool.get_idle_size())
    async with pool.acquire() as conn:
        gauges = await repository.money_gauges(conn)
    HOLDS_OPEN.set(gauges.holds_open)
    OUTBOX_BACKLOG.set(gauges.backlog)
    OUTBOX_OLDEST.set(gauges.oldest.timestamp() if gauges.oldest else 0)
