"""Paired A/B of two server setups on one database: their wrk runs alternate (A B, then B A, ...), so the
machine's drift (up to 2x between minutes here) hits both alike. Not in `make bench`.

    .venv/bin/python -m bench.ab --a-workers 1 --b-workers 2 [--modes health,balance,debit] [--repeat 3]
    .venv/bin/python -m bench.ab --a-src ../old-checkout/src    # A runs another checkout's code

Prints, per mode and setup, the median and range of req/s and the median p99.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
from pathlib import Path

from bench.api import TOKENS, USERS, seed
from bench.harness import Server, command_line, embedded_database, jwt_tokens, served, wrk


async def main(args: argparse.Namespace) -> None:
    data_dir = tempfile.mkdtemp(prefix="mana-credits-ab-")
    env = {"BENCH_USERS": str(args.users), "BENCH_TOKENS": str(jwt_tokens(Path(data_dir), TOKENS))}
    modes = args.modes.split(",")
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {(s, m): [] for s in "AB" for m in modes}
    async with embedded_database() as url, contextlib.AsyncExitStack() as stack:
        await seed(url, USERS, 1_000_000_000)
        servers: dict[str, Server] = {
            setup: await stack.enter_async_context(
                served(
                    url,
                    workers=getattr(args, f"{setup.lower()}_workers"),
                    data_dir=data_dir,
                    src=getattr(args, f"{setup.lower()}_src"),
                )
            )
            for setup in "AB"
        }
        for server in servers.values():  # warm up
            await wrk(server.base, "health", seconds=2, connections=args.connections, env=env)
        for number in range(args.repeat):
            for mode in modes:
                for setup in "AB" if number % 2 == 0 else "BA":
                    result = await wrk(
                        servers[setup].base, mode, seconds=args.seconds, connections=args.connections, env=env
                    )
                    runs[setup, mode].append((result.rps, result.p99_ms))
    for mode in modes:
        for setup in "AB":
            rps = [r for r, _ in runs[setup, mode]]
            p99 = statistics.median(p for _, p in runs[setup, mode])
            spread = f"[{min(rps):.0f}-{max(rps):.0f}]"
            print(f"{mode:8} {setup}: {statistics.median(rps):7.0f} req/s {spread}, p99 {p99:.1f} ms")


if __name__ == "__main__":
    parser = command_line(__doc__)
    parser.add_argument("--modes", default="health,balance,debit")
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--users", type=int, default=USERS, help="debit spread (1: one hot account, as S2)")
    for setup in ("a", "b"):
        parser.add_argument(f"--{setup}-workers", type=int, default=1)
        parser.add_argument(
            f"--{setup}-src", type=lambda path: str(Path(path).resolve()), help="a checkout's src"
        )
    asyncio.run(main(parser.parse_args()))
