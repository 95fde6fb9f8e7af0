"""SIGTERM stops the real server within a bound in every state, here the worst: the database gone (stopped,
or hung without closing anything) while requests are in flight."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.faults.conftest import FreezingProxy, OwnPostgres, ServerProcess, running

pytestmark = pytest.mark.slow

SHUTDOWN_BOUND_SECONDS = 30


async def _sigterm_with_requests_waiting(server: ServerProcess, cut_off: Callable[[], None]) -> None:
    """Cut the database off, put requests in flight on it, SIGTERM: the server must exit within the bound."""
    async with httpx.AsyncClient(base_url=server.base, timeout=120) as client:
        assert (await client.get("/ready")).status_code == 200
        cut_off()
        in_flight = [asyncio.create_task(client.get("/ready")) for _ in range(20)]
        await asyncio.sleep(1)
        server.signal(signal.SIGTERM)
        code = await server.wait(SHUTDOWN_BOUND_SECONDS)
        assert code is not None, f"still running {SHUTDOWN_BOUND_SECONDS} s after SIGTERM"
        await asyncio.gather(*in_flight, return_exceptions=True)


async def test_sigterm_with_the_database_down_and_requests_in_flight_exits_in_bounded_time(
    own_postgres: tuple[OwnPostgres, Path], database_for_server: str
) -> None:
    pg, folder = own_postgres
    async with running(database_for_server, folder / "data") as server:
        await _sigterm_with_requests_waiting(server, pg.stop)


async def test_sigterm_with_a_hung_database_and_requests_waiting_on_it_exits_in_bounded_time(
    own_postgres: tuple[OwnPostgres, Path], proxy: FreezingProxy
) -> None:
    _, folder = own_postgres
    async with running(proxy.url("faults"), folder / "data") as server:
        await _sigterm_with_requests_waiting(server, proxy.freeze)
