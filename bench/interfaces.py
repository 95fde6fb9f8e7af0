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
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from bench.api import USERS, seed
from bench.harness import (
    CHECKOUT,
    command_line,
    embedded_database,
    free_port,
    granian_command,
    paired_runs,
    server_process,
)
from mana_credits.credits.schemas import InternalUseCredits, UseResult
from mana_credits.db.pool import create_pool
from mana_credits.ledger.group import GroupCommit, UsageDebit

_read = msgspec.json.Decoder(InternalUseCredits).decode
INTERFACES = ("asgi", "rsgi")
_group_commits: list[GroupCommit] = []  # the worker's one group commit, made by its first debit


async def _debit(body: bytes) -> bytes:
    if not _group_commits:
        _group_commits.append(GroupCommit(await create_pool(os.environ["DATABASE_URL"])))
    data = _read(body)
    item = UsageDebit(data.user_id, int(data.amount), data.app_id, data.description, data.metadata)
    return msgspec.json.encode(UseResult.of(await _group_commits[0].debit(item)))


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
    base = f"http://127.0.0.1:{port}"
    command = granian_command(interface, f"bench.interfaces:{interface}_app", workers=workers, port=port)
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": CHECKOUT}
    probe = {"userId": "bench-1", "amount": 1, "appId": "bench", "description": "probe"}
    async with server_process(command, env, lambda client: client.post(base, json=probe)):
        yield base


async def main(args: argparse.Namespace) -> None:
    async with embedded_database() as url, contextlib.AsyncExitStack() as servers:
        await seed(url, USERS, 1_000_000_000)
        bases = {
            name: await servers.enter_async_context(bare_server(url, name, args.workers))
            for name in INTERFACES
        }
        await paired_runs(
            bases, ["debit"], rounds=args.rounds, seconds=args.seconds, connections=args.connections,
            env={"BENCH_USERS": str(args.users)},
        )  # fmt: skip


if __name__ == "__main__":
    parser = command_line(__doc__)
    parser.add_argument("--users", type=int, default=1, help="debit spread (1: one hot account, as S2)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    asyncio.run(main(parser.parse_args()))
