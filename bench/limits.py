"""How the pgbench limit of S1 and S2 depends on pgbench's client count (not in `make bench`).

    .venv/bin/python -m bench.limits [--clients 1,2,4,10,32,64] [--rounds 3] [--seconds 5]

`make bench` divides S1 and S2 by pgbench of the ledger's one-statement debit with the scenario's own
connections (64, 32), and reports the division by 10 clients (`bench.api.PGBENCH_CLIENTS`) beside it. On
one hot account the statement's throughput falls as clients are added (they queue on the row lock, and on
2 cores the holder of the lock is descheduled while the others wake), so S2's ratio depends on that count.
This runs the same two scripts on the same seeded database at each count, in rounds whose order reverses
every other round (the machine's drift hits all counts alike), and prints the median and range per count.
"""

from __future__ import annotations

import asyncio
import statistics

from bench.api import USERS, debit_script, seed
from bench.harness import command_line, embedded_database, pgbench

SPREADS = {"S1 (10,000 users)": USERS, "S2 (one hot account)": 1}


async def main(clients: list[int], rounds: int, seconds: float) -> None:
    tps: dict[tuple[str, int], list[float]] = {}
    async with embedded_database() as url:
        await seed(url, USERS, 1_000_000_000)
        for number in range(1, rounds + 1):
            for name, users in SPREADS.items():
                for count in clients if number % 2 else reversed(clients):
                    found = await pgbench(url, debit_script(users), seconds=seconds, clients=count)
                    tps.setdefault((name, count), []).append(found)
            print(f"round {number} of {rounds} done", flush=True)
    for name in SPREADS:
        print(name)
        for count in clients:
            runs = tps[(name, count)]
            spread = f"[{min(runs):.0f}-{max(runs):.0f}]"
            print(f"  {count:3d} clients: {statistics.median(runs):7.0f} tx/s {spread}")


if __name__ == "__main__":
    parser = command_line(__doc__)
    parser.add_argument("--clients", default="1,2,4,10,32,64", help="pgbench client counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    asyncio.run(main([int(count) for count in args.clients.split(",")], args.rounds, args.seconds))
