"""kill -9 of one granian worker (an OOM kill) costs that worker's in-flight requests only: the other worker
keeps answering, granian starts a new one in its place, and the ledger stays consistent. Before, granian's
main process took the first unexpected worker exit as a reason to stop every worker and exit."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from pathlib import Path

import httpx
import pytest

from mana_credits.db.pool import connect
from mana_credits.ledger.audit import audit
from tests.faults.conftest import OwnPostgres, ServerProcess, running
from tests.support import SERVICE_KEY, service_headers

pytestmark = pytest.mark.slow

ACCOUNTS = 8
WARM_UP = 50  # debits answered before the kill
AFTER_KILL = 40  # requests sent, each on a new connection, while one worker is dead or being replaced
BOUND_SECONDS = 30  # liveness bounds, not measures: with the bug the server is gone for good
# granian treats a second failure within 5.5 s of a respawn as a crash loop and exits: wait past that.
CRASH_LOOP_SECONDS = 6


class Load:
    """Keyed debits sent continuously until stopped; a lost answer is sent again later with its key."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.keys = itertools.count()
        self.answered: dict[str, int] = {}
        self.lost: list[tuple[str, dict[str, object]]] = []
        self.stop = asyncio.Event()
        self.busy = asyncio.Event()  # set once the load is well under way
        self.failures: list[str] = []  # what the lost answers were, for the failure message

    def body(self, n: int) -> tuple[str, dict[str, object]]:
        return f"wd-debit-{n}", {
            "userId": f"wd-{n % ACCOUNTS}",
            "amount": 1,
            "appId": "faults",
            "description": "-",
        }

    async def send(self, client: httpx.AsyncClient, key: str, body: dict[str, object]) -> int | None:
        headers = {**service_headers("faults"), "Idempotency-Key": key}
        try:
            response = await client.post(f"{self.server.base}/api/v1/internal/credits/use", json=body,
                                         headers=headers)  # fmt: skip
        except httpx.TransportError as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")
            return None
        self.answered[key] = response.status_code
        if len(self.answered) >= WARM_UP:
            self.busy.set()
        return response.status_code

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=BOUND_SECONDS) as client:
            while not self.stop.is_set():
                key, body = self.body(next(self.keys))
                if await self.send(client, key, body) is None:
                    self.lost.append((key, body))

    async def fresh_connections(self, count: int) -> list[int | None]:
        """`count` debits, each on a connection of its own (an old one may belong to the dead worker)."""
        statuses = []
        for _ in range(count):
            async with httpx.AsyncClient(timeout=BOUND_SECONDS) as client:
                statuses.append(await self.send(client, *self.body(next(self.keys))))
        return statuses


async def wait_for_workers(server: ServerProcess, count: int, without: set[int]) -> set[int]:
    for _ in range(BOUND_SECONDS * 10):
        workers = server.worker_pids()
        if len(workers) == count and not workers & without:
            return workers
        await asyncio.sleep(0.1)
    raise AssertionError(f"no new worker within {BOUND_SECONDS} s: {server.worker_pids()}")


async def test_kill_9_of_one_worker_under_load_costs_only_its_requests(
    own_postgres: tuple[OwnPostgres, Path], database_for_server: str
) -> None:
    _, folder = own_postgres
    env = {"MANA_SERVICE_KEY": SERVICE_KEY, "MANA_CREDITS_SCHEDULER": "false"}
    async with running(database_for_server, folder / "data", 2, **env) as server:
        async with httpx.AsyncClient(base_url=server.base, timeout=BOUND_SECONDS) as client:
            for i in range(ACCOUNTS):
                grant = {"userId": f"wd-{i}", "amount": 10_000, "reason": "load", "referenceId": f"wd-{i}"}
                response = await client.post("/api/v1/internal/credits/grant", json=grant,
                                             headers=service_headers())  # fmt: skip
                assert response.status_code == 200, response.text
        first = server.worker_pids()
        assert len(first) == 2, first
        load = Load(server)
        loops = [asyncio.create_task(load.run()) for _ in range(8)]
        try:
            await asyncio.wait_for(load.busy.wait(), BOUND_SECONDS)
            victim, survivor = sorted(first)
            os.kill(victim, signal.SIGKILL)
            # The survivor answers at once, and goes on answering while the replacement starts.
            assert await load.fresh_connections(AFTER_KILL) == [200] * AFTER_KILL, load.failures[-3:]
            second = await wait_for_workers(server, 2, without={victim})
            assert survivor in second
            # The replacement serves: with the survivor killed too, only it is left to answer.
            await asyncio.sleep(CRASH_LOOP_SECONDS)
            os.kill(survivor, signal.SIGKILL)
            assert await load.fresh_connections(AFTER_KILL) == [200] * AFTER_KILL, load.failures[-3:]
            await wait_for_workers(server, 2, without={victim, survivor})
        finally:
            load.stop.set()
            await asyncio.gather(*loops)
        assert server.process is not None and server.process.returncode is None
        # The dead workers' live gauges (pool size, requests in progress) went with them.
        left = [file.name for file in (folder / "data" / "metrics").glob("gauge_live*.db")]
        assert not [name for name in left if name.endswith((f"_{victim}.db", f"_{survivor}.db"))], left
        # What the kills cut off is sent again with its key: it takes effect once.
        async with httpx.AsyncClient(timeout=BOUND_SECONDS) as client:
            for key, body in load.lost:
                assert await load.send(client, key, body) == 200
    assert set(load.answered.values()) == {200}
    conn = await connect(database_for_server)
    try:
        assert await audit(conn) == []
        rows = await conn.fetch(
            "SELECT idempotency_key, count(*) AS n FROM credits.transactions "
            "WHERE type = 'usage' AND user_id LIKE 'wd-%' GROUP BY 1"
        )
    finally:
        await conn.close()
    assert {row["idempotency_key"]: row["n"] for row in rows} == dict.fromkeys(load.answered, 1)
    print(f"worker kill -9: {len(load.answered)} debits, {len(load.lost)} answers lost and sent again")
