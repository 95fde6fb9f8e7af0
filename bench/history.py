"""S5: transaction history at 10 million ledger rows, one user holding 1 million of them.

Seeded with SQL (`generate_series`; the table's plain indexes are dropped for the load and rebuilt from
their own definitions afterwards, which is much faster than maintaining them row by row). Then the history
query the endpoint runs (`credits.repository.list_transactions`, 50 rows) is timed for the heavy user:
the first page, a keyset page 900,000 rows deep, and a page filtered by `type` + `appId` that matches
only 10 of the user's oldest rows (the case that scanned the whole history before its index). Reported:
p99 in the database (planning + execution of that SQL, EXPLAIN ANALYZE) and p99 of the round trip. Then
S6 on the same rows: a month's statement (bench/statement.py).

    .venv/bin/python -m bench.history [--rows 10000000] [--heavy 1000000] [--samples 200]
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, cast

import asyncpg

from bench import statement
from bench.harness import command_line, embedded_database
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
    # Its primary key and unique constraints too (nothing references the table): random uuids make the
    # primary key the slowest index to keep up row by row.
    constraints = await conn.fetch(
        """
        SELECT conname AS name, pg_get_constraintdef(oid) AS definition FROM pg_constraint
        WHERE conrelid = 'credits.transactions'::regclass AND contype IN ('p', 'u')
          AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.confrelid = 'credits.transactions'::regclass)
        """
    )  # fmt: skip
    for index in plain:
        await conn.execute(f"DROP INDEX {index['name']}")
    for constraint in constraints:
        await conn.execute(f"ALTER TABLE credits.transactions DROP CONSTRAINT {constraint['name']}")
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
    for constraint in constraints:
        await conn.execute(
            f"ALTER TABLE credits.transactions ADD CONSTRAINT {constraint['name']} {constraint['definition']}"
        )
    for index in plain:
        await conn.execute(index["definition"])
    await conn.execute("VACUUM ANALYZE credits.transactions")


class Recorder:
    """Stands in for the connection to see the SQL `list_transactions` sends (the endpoint's own query)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.sql = ""
        self.args: tuple[Any, ...] = ()

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        self.sql, self.args = sql, args
        return await self.conn.fetch(sql, *args)


def p99(timings: list[float]) -> float:
    timings = sorted(timings)
    return round(timings[max(0, int(len(timings) * 0.99) - 1)], 2)


async def page_p99_ms(conn: asyncpg.Connection, samples: int, **query: Any) -> tuple[float, float]:
    """p99 of the page's time in the database (planning + execution, EXPLAIN ANALYZE) and round trip."""
    recorder = Recorder(conn)
    round_trips = []
    for _ in range(samples):
        started = time.perf_counter()
        rows = await list_transactions(cast(Conn, recorder), HEAVY, limit=50, offset=0, **query)
        round_trips.append((time.perf_counter() - started) * 1000)
        assert rows, "the page must not be empty"
    in_db = []
    for _ in range(samples):
        plan = (await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {recorder.sql}", *recorder.args))[0]
        in_db.append(plan["Planning Time"] + plan["Execution Time"])
    return p99(in_db), p99(round_trips)


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
            assert deep is not None, "the heavy user has fewer rows than seeded"
            pages: dict[str, dict[str, Any]] = {
                "first_page": {"after": None, "type_": None, "app_id": None},
                "deep_page": {"after": (deep["created_at"], deep["id"]), "type_": None, "app_id": None},
                "filtered_page": {"after": None, "type_": "refund", "app_id": "chat"},
            }
            result: dict[str, Any] = {}
            for name, query in pages.items():
                in_db, round_trip = await page_p99_ms(conn, samples, **query)
                result[f"{name}_p99_ms"] = in_db
                result[f"{name}_round_trip_p99_ms"] = round_trip
            result["rows"] = count
            plan = await conn.fetchval(
                "EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM credits.transactions WHERE user_id = $1 "
                "AND type = 'refund' AND app_id = 'chat' ORDER BY created_at DESC, id DESC LIMIT 50",
                HEAVY,
            )
            print(f"filtered page plan: {json.dumps(plan)[:400]}", flush=True)
            result.update(await statement.measure(conn))  # S6 on the same data set
        finally:
            await conn.close()
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    parser = command_line(__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--heavy", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(run(args.rows, args.heavy, args.samples))
