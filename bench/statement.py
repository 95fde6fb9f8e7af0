"""S6: one month's statement (`mana-credits statement`) on the S5 history data set (10M ledger rows).

The balance rows are made from the ledger (so the statement reconciles), then the statement of the last
complete month in Europe/Berlin (the seeded rows span the ~116 days before now, so it is full: ~2.6M of
its rows) is built three times; reported: each run's seconds, the month's rows, and that it reconciled.
Goal: at most 10 s. `make bench` runs it inside S5, on S5's database; alone it seeds its own:

    .venv/bin/python -m bench.statement [--rows 10000000]
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bench.harness import command_line, embedded_database
from mana_credits.books import service
from mana_credits.db.pool import Conn, connect

RUNS = 3


def last_month() -> str:
    first = datetime.now(ZoneInfo(service.ZONE)).replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


async def measure(conn: Conn) -> dict[str, Any]:
    await conn.execute(
        """
        INSERT INTO credits.balances (user_id, balance)
        SELECT user_id, SUM(amount) FROM credits.transactions GROUP BY user_id
        ON CONFLICT (user_id) DO UPDATE SET balance = EXCLUDED.balance
        """
    )
    await conn.execute("VACUUM ANALYZE credits.balances")
    month = last_month()
    start, end = service.month_bounds(month)
    rows = await conn.fetchval(
        "SELECT count(*) FROM credits.transactions WHERE created_at >= $1 AND created_at < $2", start, end
    )
    seconds = []
    for _ in range(RUNS):
        started = time.perf_counter()
        found = await service.build(conn, month)
        seconds.append(round(time.perf_counter() - started, 2))
    return {
        "statement_month": month,
        "statement_month_rows": rows,
        "statement_seconds": seconds,
        "statement_reconciled": found.reconciled,
    }


async def run(rows: int, heavy: int) -> dict[str, Any]:
    from bench import history  # which runs `measure` inside S5

    async with embedded_database("bench_statement") as url:
        conn = await connect(url)
        try:
            await history.seed(conn, rows, heavy)
            result = await measure(conn)
        finally:
            await conn.close()
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    parser = command_line(__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000, help="of which a tenth are the heavy user's")
    rows = parser.parse_args().rows
    asyncio.run(run(rows, rows // 10))
