"""Prometheus metrics across the server's worker processes (multiprocess mode: PROMETHEUS_MULTIPROC_DIR).

Define metrics with the classes from here (`from mana_credits.kit.metrics import Counter`), at module level
as usual. In multiprocess mode the client asks the kernel for the pid on every single update, to notice a
fork; importing this module makes it use a remembered pid instead, refreshed after a fork.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from litestar import Request
from litestar.plugins.prometheus import PrometheusController
from prometheus_client import Counter, Gauge, Histogram, multiprocess, values

__all__ = [
    "Controller", "Counter", "Gauge", "Histogram",
    "flush", "flushed", "request_finished", "request_started",
]  # fmt: skip

_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


def _process_id() -> int:
    return _pid


def _forget_dead_workers(folder: str) -> None:
    """A worker killed outright (kill -9, OOM) leaves its live gauges behind, counted as if it still ran
    (its pool, its requests in progress); the worker started in its place drops them."""
    for file in Path(folder).glob("gauge_live*_*.db"):
        pid = int(file.stem.rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]
        except PermissionError:  # alive, someone else's
            pass


os.register_at_fork(after_in_child=_after_fork)
if _folder := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _forget_dead_workers(_folder)
    # Before any metric value exists: values are created with whatever ValueClass is at that moment.
    values.ValueClass = values.MultiProcessValue(process_identifier=_process_id)  # type: ignore[no-untyped-call]


# The metrics, names and labels of Litestar's Prometheus middleware (dashboards read them), without its
# per-request work: a Request object, label dicts and four label lookups under a lock on every request.
_LABELS = ["method", "path", "status_code", "app_name"]
_APP = "mana_credits"
IN_PROGRESS = Gauge(
    "mana_credits_requests_in_progress", "Total requests currently in progress", _LABELS,
    multiprocess_mode="livesum",
)  # fmt: skip
REQUESTS = Counter("mana_credits_requests_total", "Total requests", _LABELS)
ERRORS = Counter("mana_credits_requests_error_total", "Total errors in requests", _LABELS)
DURATION = Histogram("mana_credits_request_duration_seconds", "Request duration, in seconds", _LABELS)
_BOUNDS = [*Histogram.DEFAULT_BUCKETS]  # DURATION's, +Inf last

# Requests are tallied in the process and added to the shared values by `flush`, each second and before
# /metrics answers: in multiprocess mode every update takes a lock and writes a memory-mapped file, and
# five of them per request were a fifth of a debit's CPU (bench/README.md).
FLUSH_SECONDS = 1.0


@dataclass(slots=True)
class _Tally:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(_BOUNDS))


_in_flight: dict[tuple[str, str], int] = {}
_tallies: dict[tuple[str, str, int], _Tally] = {}


def request_started(method: str, path: str) -> None:
    """Count a request in flight under its route (its path template: the series stay few)."""
    _in_flight[method, path] = _in_flight.get((method, path), 0) + 1


def request_finished(method: str, path: str, status: int, seconds: float) -> None:
    """Request count, errors and duration (until the response body was sent) of a finished request."""
    _in_flight[method, path] -= 1
    tally = _tallies.get((method, path, status))
    if tally is None:
        tally = _tallies[method, path, status] = _Tally()
    tally.requests += 1
    if status >= 500:
        tally.errors += 1
    tally.seconds += seconds
    tally.buckets[bisect.bisect_left(_BOUNDS, seconds)] += 1


def flush() -> None:
    """Add the requests tallied since the last flush to the shared values."""
    global _tallies
    tallies, _tallies = _tallies, {}
    for (method, path), count in _in_flight.items():
        # Under status 200, as Litestar's middleware did (the status is not known yet).
        IN_PROGRESS.labels(method, path, 200, _APP).set(count)
    for (method, path, status), tally in tallies.items():
        labels = (method, path, status, _APP)
        REQUESTS.labels(*labels).inc(tally.requests)
        ERRORS.labels(*labels).inc(tally.errors)
        # prometheus_client observes one value at a time; its sum and buckets take a tally's at once.
        durations = DURATION.labels(*labels)
        durations._sum.inc(tally.seconds)
        for bucket, count in zip(durations._buckets, tally.buckets, strict=True):
            if count:
                bucket.inc(count)


async def flushed() -> None:
    """`flush` as a job (kit.jobs) that the app's lifespan runs every FLUSH_SECONDS in each process."""
    flush()


async def _flush_first(_: Request[Any, Any, Any]) -> None:
    flush()


class Controller(PrometheusController):
    """GET /metrics: every worker's values, merged from the shared folder; this worker's tallies first."""

    before_request = staticmethod(_flush_first)
