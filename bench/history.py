"""S5: transaction history at 10 million ledger rows, one user holding 1 million of them.

Seeded with SQL (`generate_series`; the table's plain indexes are dropped for the load and rebuilt from
their own definitions afterwards, which is much faster than maintaining them row by row). Then the history
query the endpoint runs (`credits.repository.list_transactions`, 50 rows) is timed for the heavy user:
the first page, a keyset page 900,000 rows deep, and a page filtered by `type` + `appId` that matches
only 10 of the user's oldest rows (the case that scanned the whole history before its index).

    .venv/bin/python -m bench.history [--rows 10000000] [--heavy 1000000] [--samples 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from bench.harness import embedded_database
from mana_credits.credits.repository import list_transactions
from mana_credits.db.pool import Conn, connect

HEAVY = "heavy-user"
OTHERS = 100_000
CHUNK = 1_000_000
RARE = 10  # the heavy user's oldest rows are refunds in app "chat"; the rest is usage in other apps


async def seed(conn: Conn, rows: int, heavy: int) -> None:
    await conn.execute("SET synchronous_commit = off; SET maintenance_work_mem = '256MB'")
    plain = await conn.fetch(
        """
        SELECT indexrelid::regclass::text AS name, pg_get_indexdef(indexrelid) AS definition
        FROM pg_index WHERE indrelid = 'credits.transactions'::regclass
          AND indexrelid NOT IN (SELECT conindid FROM pg_constraint
                                 WHERE conrelid = 'credits.transactions'::regclass)
        """
    )  # fmt: skip
    for index in plain:
        await conn.execute(f"DROP INDEX {index['name']}")
    # The heavy user: row n is n seconds old, so n = heavy is the oldest.
    for start in range(1, heavy + 1, CHUNK):
        await conn.execute(
            """
            INSERT INTO credits.transactions (user_id, type, status, amount, balance_before, balance_after,
              app_id, description, created_at, completed_at)
            SELECT $1, CASE WHEN rare THEN 'refund' ELSE 'usage' END::public.transaction_type, 'completed',
                   CASE WHEN rare THEN 1 ELSE -1 END, 1, CASE WHEN rare THEN 2 ELSE 0 END,
                   CASE WHEN rare THEN 'chat' ELSE (ARRAY['todo', 'pictures', 'zitare'])[n % 3 + 1] END,
                   'bench history', now() - n * interval '1 second', now() - n * interval '1 second'
            FROM (SELECT n, n > $4::int - $5::int AS rare FROM generate_series($2::int, $3::int) n) g
            """,
            HEAVY, start, min(start + CHUNK - 1, heavy), heavy, RARE,
        )  # fmt: skip
    others = rows - heavy
    for start in range(1, others + 1, CHUNK):
        await conn.execute(
            """
            INSERT INTO credits.transactions (user_id, type, status, amount, balance_before, balance_after,
              app_id, description, created_at, completed_at)
            SELECT 'user-' || (n % $3), 'usage', 'completed', -1, 1, 0, 'chat', 'bench history',
                   now() - n * interval '1 second', now() - n * interval '1 second'
            FROM generate_series($1::int, $2::int) n
            """,
            start, min(start + CHUNK - 1, others), OTHERS,
        )  # fmt: skip
    for index in plain:
        await conn.execute(index["definition"])
    await conn.execute("VACUUM ANALYZE credits.transactions")


async def p99_ms(conn: Conn, samples: int, **query: Any) -> float:
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        rows = await list_transactions(conn, HEAVY, limit=50, offset=0, **query)
        timings.append((time.perf_counter() - started) * 1000)
        assert rows, "the page must not be empty"
    timings.sort()
    return round(timings[max(0, int(len(timings) * 0.99) - 1)], 2)


async def run(rows: int = 10_000_000, heavy: int = 1_000_000, samples: int = 200) -> dict[str, Any]:
    async with embedded_database("bench_history") as url:
        conn = await connect(url)
        try:
            started = time.perf_counter()
            await seed(conn, rows, heavy)
            count = await conn.fetchval("SELECT count(*) FROM credits.transactions")
            print(f"seeded {count:,} ledger rows in {time.perf_counter() - started:.0f} s", flush=True)
            deep = await conn.fetchrow(
                "SELECT created_at, id FROM credits.transactions WHERE user_id = $1 "
                "ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT 1",
                HEAVY, heavy * 9 // 10,
            )  # fmt: skip
            filtered = {"type_": "refund", "app_id": "chat"}
            result = {
                "first_page_p99_ms": await p99_ms(conn, samples, after=None, type_=None, app_id=None),
                "deep_page_p99_ms": await p99_ms(
                    conn, samples, after=(deep["created_at"], deep["id"]), type_=None, app_id=None
                ),
                "filtered_page_p99_ms": await p99_ms(conn, samples, after=None, **filtered),
                "rows": count,
            }
            plan = await conn.fetchval(
                "EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM credits.transactions WHERE user_id = $1 "
                "AND type = 'refund' AND app_id = 'chat' ORDER BY created_at DESC, id DESC LIMIT 50",
                HEAVY,
            )
            print(f"filtered page plan: {json.dumps(plan)[:400]}", flush=True)
        finally:
            await conn.close()
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--heavy", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(run(args.rows, args.heavy, args.samples))
