"""Prometheus metrics across the server's worker processes (multiprocess mode: PROMETHEUS_MULTIPROC_DIR).

Define metrics with the classes from here (`from mana_credits.kit.metrics import Counter`), at module level
as usual. In multiprocess mode the client asks the kernel for the pid on every single update, to notice a
fork; importing this module makes it use a remembered pid instead, refreshed after a fork.
"""

from __future__ import annotations

import os

from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.types import Middleware
from prometheus_client import Counter, Gauge, Histogram, values

__all__ = ["Controller", "Counter", "Gauge", "Histogram", "http_middleware"]

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


def http_middleware() -> Middleware:
    """Request count, duration and in-flight requests per route."""
    return PrometheusConfig(app_name="mana_credits", prefix="mana_credits", group_path=True).middleware
