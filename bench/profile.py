"""Profile the served worker under one load scenario with py-spy (a dev dependency; not in `make bench`).

    .venv/bin/python -m bench.profile debit|balance|health [--seconds 15] [--native]

Prints the functions with the most samples: self (where the CPU is) and total (what it is for).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import tempfile
from pathlib import Path

from bench.api import TOKENS, USERS, seed
from bench.harness import children, command_line, embedded_database, jwt_tokens, served, wrk


def summarize(folded: Path, top: int) -> None:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in folded.read_text().splitlines():
        stack, _, counted = line.rpartition(" ")
        frames = stack.split(";")
        count = int(counted)
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    for title, counter in (("self", own), ("total", total)):
        print(f"\n-- top {top} by {title} ({samples} samples)")
        for frame, count in counter.most_common(top):
            print(f"{100 * count / samples:5.1f} %  {frame[:150]}")


async def main(args: argparse.Namespace) -> None:
    spy = str(Path(sys.executable).parent / "py-spy")
    data_dir = tempfile.mkdtemp(prefix="mana-credits-profile-")
    tokens = jwt_tokens(Path(data_dir), TOKENS)
    folded = Path(data_dir) / "profile.txt"
    async with embedded_database() as url:
        await seed(url, USERS, 1_000_000_000)
        async with served(url, workers=1, data_dir=data_dir) as server:
            worker = children(server.pid)[0]
            env = {"BENCH_USERS": str(USERS), "BENCH_TOKENS": str(tokens)}
            await wrk(server.base, args.mode, seconds=3, connections=64, env=env)  # warm up
            record = [spy, "record", "--pid", str(worker), "--duration", str(int(args.seconds)),
                      "--rate", "200", "--format", "raw", "--output", str(folded), "--threads"]  # fmt: skip
            record.append("--native" if args.native else "--nonblocking")
            spying = await asyncio.create_subprocess_exec(*record, stdout=asyncio.subprocess.DEVNULL)
            result = await wrk(server.base, args.mode, seconds=args.seconds, connections=64, env=env)
            await spying.wait()
            print(f"{args.mode}: {result.rps:.0f} req/s, p99 {result.p99_ms:.1f} ms")
    summarize(folded, args.top)


if __name__ == "__main__":
    parser = command_line(__doc__)
    parser.add_argument("mode", choices=["debit", "balance", "health"])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--native", action="store_true")
    asyncio.run(main(parser.parse_args()))
