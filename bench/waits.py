"""What the group commit's database sessions do during S1 or S2: `pg_stat_activity` sampled every few
milliseconds while wrk runs the debit scenario (not in `make bench`).

    .venv/bin/python -m bench.waits [--users 1] [--connections 32] [--seconds 8] [--workers 2]

Prints the share of samples per state and wait event: `idle`/`ClientRead` is the session waiting for its
worker to send the next batch, `Lock`/`transactionid` waiting for another batch's row lock, `IO`/`WalSync`
the commit's flush, no wait event running.
"""

from __future__ import annotations

import argparse
import asyncio
import collections

from bench.api import USERS, seed
from bench.harness import command_line, embedded_database, served, wrk
from mana_credits.db.pool import connect

# The group commit's statement is the only one that starts this way.
_BATCH_SESSIONS = """
SELECT state, wait_event_type, wait_event FROM pg_stat_activity
WHERE application_name = 'mana-credits' AND query LIKE '%WITH RECURSIVE seq AS%'
"""
INTERVAL = 0.003


async def main(args: argparse.Namespace) -> None:
    async with embedded_database() as url:
        await seed(url, USERS, 1_000_000_000)
        async with served(url, workers=args.workers) as server:
            env = {"BENCH_USERS": str(args.users)}
            await wrk(server.base, "debit", seconds=3, connections=args.connections, env=env)  # warm up
            conn = await connect(url)
            seen: collections.Counter[tuple[str, str, str]] = collections.Counter()
            running = True

            async def sample() -> None:
                while running:
                    for row in await conn.fetch(_BATCH_SESSIONS):
                        seen[row["state"], row["wait_event_type"] or "-", row["wait_event"] or "-"] += 1
                    await asyncio.sleep(INTERVAL)

            sampler = asyncio.create_task(sample())
            seconds, connections = args.seconds, args.connections
            result = await wrk(server.base, "debit", seconds=seconds, connections=connections, env=env)
            running = False
            await sampler
            await conn.close()
    print(f"{result.rps:.0f} req/s, p99 {result.p99_ms:.1f} ms; {sum(seen.values())} samples")
    for (state, kind, event), count in seen.most_common():
        print(f"{100 * count / sum(seen.values()):5.1f} %  {state:8} {kind:8} {event}")


if __name__ == "__main__":
    parser = command_line(__doc__, http_rounds=False)
    parser.add_argument("--users", type=int, default=1, help="debit spread (1: one hot account, as S2)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--workers", type=int, default=2)
    asyncio.run(main(parser.parse_args()))
