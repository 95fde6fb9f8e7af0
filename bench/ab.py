"""Paired A/B of two server setups on one database: their wrk runs alternate (A B, then B A, ...), so the
machine's drift (up to 2x between minutes here) hits both alike. Not in `make bench`.

    .venv/bin/python -m bench.ab --a-workers 1 --b-workers 2 [--modes health,balance,debit] [--repeat 3]
    .venv/bin/python -m bench.ab --a-src ../old-checkout/src    # A runs another checkout's code
    .venv/bin/python -m bench.ab --modes debit --amount 0.1     # fractional charges (S1f)

Prints, per mode and setup, the median and range of req/s, the median p99 and the errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
from pathlib import Path

from bench.api import TOKENS, USERS, seed
from bench.harness import command_line, embedded_database, jwt_tokens, paired_runs, served


async def main(args: argparse.Namespace) -> None:
    data_dir = tempfile.mkdtemp(prefix="mana-credits-ab-")
    env = {"BENCH_USERS": str(args.users), "BENCH_TOKENS": str(jwt_tokens(Path(data_dir), TOKENS)),
           "BENCH_AMOUNT": args.amount}  # fmt: skip
    async with embedded_database() as url, contextlib.AsyncExitStack() as stack:
        await seed(url, USERS, 1_000_000_000)
        bases = {
            setup: (
                await stack.enter_async_context(
                    served(
                        url,
                        workers=getattr(args, f"{setup.lower()}_workers"),
                        data_dir=data_dir,
                        src=getattr(args, f"{setup.lower()}_src"),
                    )
                )
            ).base
            for setup in "AB"
        }
        await paired_runs(
            bases, args.modes.split(","), rounds=args.repeat, seconds=args.seconds,
            connections=args.connections, env=env,
        )  # fmt: skip


if __name__ == "__main__":
    parser = command_line(__doc__)
    parser.add_argument("--modes", default="health,balance,debit")
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--users", type=int, default=USERS, help="debit spread (1: one hot account, as S2)")
    parser.add_argument("--amount", default="1", help="the debit's amount as JSON (0.1: S1f's charges)")
    for setup in ("a", "b"):
        parser.add_argument(f"--{setup}-workers", type=int, default=1)
        parser.add_argument(
            f"--{setup}-src", type=lambda path: str(Path(path).resolve()), help="a checkout's src"
        )
    asyncio.run(main(parser.parse_args()))
