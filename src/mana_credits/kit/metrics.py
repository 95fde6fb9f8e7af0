"""Prometheus metrics across the server's worker processes (multiprocess mode: PROMETHEUS_MULTIPROC_DIR).

Define metrics with the classes from here (`from mana_credits.kit.metrics import Counter`), at module level
as usual. In multiprocess mode the client asks the kernel for the pid on every single update, to notice a
fork; importing this module makes it use a remembered pid instead, refreshed after a fork.
"""

from __future__ import annotations

import os

from litestar.plugins.prometheus import PrometheusController
from prometheus_client import Counter, Gauge, Histogram, values

__all__ = ["Controller", "Counter", "Gauge", "Histogram", "request_finished", "request_started"]

_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


def _process_id() -> int:
    return _pid


os.register_at_fork(after_in_child=_after_fork)
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Before any metric value exists: values are created with whatever ValueClass is at that moment.
    values.ValueClass = values.MultiProcessValue(process_identifier=_process_id)  # type: ignore[no-untyped-call]


# GET /metrics: every worker's values, merged from the shared folder.
Controller = PrometheusController


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

_in_progress: dict[tuple[str, str], Gauge] = {}
_finished: dict[tuple[str, str, int], tuple[Counter, Counter, Histogram]] = {}


def _gauge(method: str, path: str) -> Gauge:
    found = _in_progress.get((method, path))
    if found is None:
        # Counted under status 200, as Litestar's middleware did (the status is not known yet).
        found = _in_progress[method, path] = IN_PROGRESS.labels(method, path, 200, _APP)
    return found


def _series(method: str, path: str, status: int) -> tuple[Counter, Counter, Histogram]:
    found = _finished.get((method, path, status))
    if found is None:
        labels = (method, path, status, _APP)
        found = _finished[method, path, status] = (
            REQUESTS.labels(*labels), ERRORS.labels(*labels), DURATION.labels(*labels),
        )  # fmt: skip
    return found


def request_started(method: str, path: str) -> None:
    """Count a request in flight under its route (its path template: the series stay few)."""
    _gauge(method, path).inc()


def request_finished(method: str, path: str, status: int, seconds: float) -> None:
    """Request count, errors and duration (until the response body was sent) of a finished request."""
    _gauge(method, path).dec()
    requests, errors, durations = _series(method, path, status)
    if status >= 500:
        errors.inc()
    requests.inc()
    durations.observe(seconds)
