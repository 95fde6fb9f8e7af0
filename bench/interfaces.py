"""What granian's ASGI interface costs a keyless debit, against its native RSGI (not in `make bench`).

    .venv/bin/python -m bench.interfaces [--users 1] [--connections 32] [--rounds 4] [--workers 2]

Two bare servers of the same debit (`POST` a debit body to any path: the real body schema, the process's
real group commit, the real response body; no middleware, no key check) run side by side on one database,
one over ASGI and one over RSGI, and wrk's runs alternate between them. The difference is the interface
alone: RSGI answers with one synchronous call and reads the body with one await, where ASGI awaits a
`receive` and two `send`s, each crossing between granian's threads and Python.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec

from bench.api import USERS, seed
from bench.harness import command_line, embedded_database, free_port, wrk
from mana_credits.credits.schemas import InternalUseCredits, UseResult
from mana_credits.db.pool import create_pool
from mana_credits.ledger.coalesce import Coalescer, UsageDebit

_read = msgspec.json.Decoder(InternalUseCredits).decode
_ROOT = str(Path(__file__).resolve().parent.parent)  # the checkout, for the workers' imports
_coalescers: list[Coalescer] = []  # the worker's one group commit, made by its first debit


async def _debit(body: bytes) -> bytes:
    if not _coalescers:
        _coalescers.append(Coalescer(await create_pool(os.environ["DATABASE_URL"])))
    data = _read(body)
    item = UsageDebit(data.user_id, data.amount, data.app_id, data.description, data.metadata)
    return msgspec.json.encode(UseResult.of(await _coalescers[0].debit(item)))


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    answer = await _debit(b"".join(chunks))
    length = str(len(answer)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", length)]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


class _Rsgi:
    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        answer = await _debit(await protocol())
        protocol.response_bytes(200, [("content-type", "application/json")], answer)


rsgi_app = _Rsgi()


@contextlib.asynccontextmanager
async def bare_server(url: str, interface: str, workers: int) -> AsyncIterator[str]:
    """granian serving this module's app over `interface`, as `mana-credits serve` configures it."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": _ROOT}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "granian", "--interface", interface, "--workers", str(workers),
        "--runtime-mode", "st", "--runtime-threads", "1", "--loop", "uvloop", "--no-ws",
        "--host", "127.0.0.1", "--port", str(port), f"bench.interfaces:{interface}_app",
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    probe = {"userId": "bench-1", "amount": 1, "appId": "bench", "description": "probe"}
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(150):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.post(base, json=probe)).status_code == 200:
                        break
                await asyncio.sleep(0.2)
            else:
                raise RuntimeError(f"the {interface} server did not answer")
        yield base
    finally:
        process.terminate()
        await process.wait()


async def main(args: argparse.Namespace) -> None:
    env = {"BENCH_USERS": str(args.users)}
    runs: dict[str, list[tuple[float, float]]] = {"asgi": [], "rsgi": []}
    async with embedded_database() as url:
        await seed(url, USERS, 1_000_000_000)
        async with contextlib.AsyncExitStack() as servers:
            bases = {
                name: await servers.enter_async_context(bare_server(url, name, args.workers)) for name in runs
            }
            for base in bases.values():  # warm up
                await wrk(base, "debit", seconds=2, connections=args.connections, env=env)
            for number in range(args.rounds):
                for name in ("asgi", "rsgi") if number % 2 == 0 else ("rsgi", "asgi"):
                    result = await wrk(
                        bases[name], "debit", seconds=args.seconds, connections=args.connections, env=env
                    )
                    assert result.errors == 0, result
                    runs[name].append((result.rps, result.p99_ms))
    for name, figures in runs.items():
        rps = [r for r, _ in figures]
        spread = f"[{min(rps):.0f}-{max(rps):.0f}]"
        p99 = statistics.median(p for _, p in figures)
        print(f"{name}: {statistics.median(rps):7.0f} req/s {spread}, p99 {p99:.1f} ms")


if __name__ == "__main__":
    parser = command_line(__doc__)
    parser.add_argument("--users", type=int, default=1, help="debit spread (1: one hot account, as S2)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    asyncio.run(main(parser.parse_args()))
