"""The real server serves every keep-alive connection of a busy client (a proxy's connection pool, a load
generator), not just the first few: granian's backpressure bounds connections, not requests, and a bound
below the callers' connections left the rest unanswered for as long as the others stayed busy."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from tests.faults.conftest import OwnPostgres, running

pytestmark = pytest.mark.slow

CONNECTIONS = 64
HANG_GUARD_SECONDS = 60  # not a performance bound: with the bug the wait never ends


async def request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    """One GET /health on a kept-alive connection; its status."""
    writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    length = next(int(line.split(":", 1)[1]) for line in head.split("\r\n")
                  if line.lower().startswith("content-length:"))  # fmt: skip
    await reader.readexactly(length)
    return int(head.split(" ", 2)[1])


async def test_every_busy_keep_alive_connection_is_served(
    own_postgres: tuple[OwnPostgres, Path], database_for_server: str
) -> None:
    _, folder = own_postgres
    answered = [0] * CONNECTIONS
    everyone = asyncio.Event()

    async with running(database_for_server, folder / "data") as server:

        async def keep_busy(number: int) -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            try:
                while not everyone.is_set():  # the others stay busy until every connection got an answer
                    assert await request(reader, writer) == 200
                    answered[number] += 1
                    if all(answered):
                        everyone.set()
            finally:
                writer.close()

        clients = [asyncio.create_task(keep_busy(n)) for n in range(CONNECTIONS)]
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(everyone.wait(), HANG_GUARD_SECONDS)
        finally:
            for client in clients:
                client.cancel()
            await asyncio.gather(*clients, return_exceptions=True)
    assert all(answered), f"{answered.count(0)} of {CONNECTIONS} connections never answered"
