"""Periodic background jobs run inside each server process.

Every job claims its rows in the database (conditional updates, `FOR UPDATE SKIP LOCKED`), so running
the same job in several processes or replicas at once is safe: the loser sees no rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mana_credits.kit import money_metrics

log = logging.getLogger("mana_credits.jobs")


@dataclass(frozen=True)
class Job:
    name: str
    interval_seconds: float
    run: Callable[[], Awaitable[object]]


class JobRunner:
    def __init__(self, jobs: list[Job]) -> None:
        self.jobs = jobs
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(job), name=f"job:{job.name}") for job in self.jobs]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    @staticmethod
    async def _loop(job: Job) -> None:
        while True:
            try:
                result = await job.run()
                log.debug("job %s: %s", job.name, result)
                money_metrics.job_succeeded(job.name)
            except asyncio.CancelledError:
                raise
            except Exception:
                money_metrics.JOB_FAILURES.labels(job.name).inc()
                log.exception("job %s failed; retrying next interval", job.name)
            await asyncio.sleep(job.interval_seconds)
