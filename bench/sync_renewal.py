"""Cloud-sync renewal throughput: 100,000 due subscriptions renewed by 3 concurrent runner processes.

Each runner is its own process with its own connection pool, all released at the same moment (as three
replicas' schedulers firing together). Afterwards every funded subscription must have exactly one
renewal charge, every broke one must be paused with one queued email, and the ledger audit must be clean.

    .venv/bin/python -m bench.sync_renewal [--subscriptions 100000] [--runners 3] [--batch 500]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.harness import command_line, embedded_database
from mana_credits.db.pool import connect, create_pool
from mana_credits.ledger.audit import audit
from mana_credits.sync_billing import service

# Every BROKE_EVERY-th user cannot pay the renewal and is paused instead.
BROKE_EVERY = 50


async def seed(url: str, count: int, due: datetime) -> None:
    conn = await connect(url)
    try:
        await conn.execute(
            """
            WITH u AS (
              SELECT 'sync-' || g AS user_id, CASE WHEN g % $3 = 0 THEN 10 ELSE 100 END AS credits
              FROM generate_series(1, $1) g
            ), b AS (
              INSERT INTO credits.balances (user_id, balance, total_earned)
              SELECT user_id, credits, credits FROM u
            ), s AS (
              INSERT INTO credits.sync_subscriptions
                (user_id, active, billing_interval, amount_charged, activated_at, next_charge_at,
                 current_period_end, anchor_day, email)
              SELECT user_id, true, 'monthly', 30, $2::timestamptz, $2, $2,
                     extract(day FROM $2::timestamptz)::int, user_id || '@example.com'
              FROM u
            )
            INSERT INTO credits.transactions (user_id, type, status, amount, balance_before, balance_after,
              app_id, description, completed_at)
            SELECT user_id, 'grant', 'completed', credits, 0, credits, 'bench', 'seed', now() FROM u
            """,
            count,
            due,
            BROKE_EVERY,
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def runner(url: str, now: datetime, batch: int) -> None:
    """One runner process: connect, wait for the start signal on stdin, renew, print the counts."""
    pool = await create_pool(url, size=2)
    try:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        result = await service.charge_recurring(
            pool, now, resume="https://mana.test/settings/sync", batch=batch
        )
        print(json.dumps({"charged": result.charged, "paused": result.paused, "errors": result.errors,
                          "total": result.total}), flush=True)  # fmt: skip
    finally:
        await pool.close()


async def verify(url: str, count: int) -> list[str]:
    conn = await connect(url)
    problems: list[str] = []
    try:
        broke = count // BROKE_EVERY
        charges = await conn.fetchrow(
            """
            SELECT count(*) AS rows, count(DISTINCT user_id) AS users, max(n) AS most FROM (
              SELECT user_id, count(*) OVER (PARTITION BY user_id) AS n
              FROM credits.transactions WHERE app_id = 'sync'
            ) t
            """
        )
        assert charges is not None  # an aggregate without GROUP BY returns one row
        if (charges["rows"], charges["users"], charges["most"]) != (count - broke, count - broke, 1):
            problems.append(f"renewal charges {dict(charges)} != one each for {count - broke} users")
        paused = await conn.fetchval(
            "SELECT count(*) FROM credits.sync_subscriptions WHERE paused_at IS NOT NULL"
        )
        emails = await conn.fetchval("SELECT count(*) FROM credits.notification_outbox")
        if (paused, emails) != (broke, broke):
            problems.append(f"paused {paused} / emails {emails} != {broke}")
        left = await conn.fetchval(
            "SELECT count(*) FROM credits.sync_subscriptions WHERE active AND next_charge_at <= now()"
        )
        if left:
            problems.append(f"{left} subscriptions still due")
        offenders = await audit(conn)
        if offenders:
            problems.append(f"ledger audit: {len(offenders)} offenders")
    finally:
        await conn.close()
    return problems


async def run(count: int = 100_000, runners: int = 3, batch: int = service.BATCH) -> dict[str, Any]:
    """S4: the wall time of the renewals, and whether the result verified."""
    now = datetime.now(UTC)
    async with embedded_database("bench_sync") as url:
        started = time.perf_counter()
        await seed(url, count, now - timedelta(hours=1))
        print(f"seeded {count:,} due subscriptions in {time.perf_counter() - started:.1f} s", flush=True)
        command = [sys.executable, "-m", "bench.sync_renewal", "--runner", url, now.isoformat(), str(batch)]
        pipe = asyncio.subprocess.PIPE
        processes = [
            await asyncio.create_subprocess_exec(*command, stdin=pipe, stdout=pipe) for _ in range(runners)
        ]
        for process in processes:
            assert process.stdout is not None
            assert (await process.stdout.readline()).strip() == b"ready"
        started = time.perf_counter()
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            await process.stdin.drain()
        outputs = await asyncio.gather(*(process.communicate() for process in processes))
        wall = time.perf_counter() - started
        results = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]
        totals = {key: sum(item[key] for item in results) for key in ("charged", "paused", "errors", "total")}
        print(f"runners: {[item['total'] for item in results]} subscriptions each", flush=True)
        print(f"totals: {totals}", flush=True)
        print(
            f"wall time: {wall:.2f} s ({count / wall:,.0f} renewals/s) with {runners} runners, batch {batch}"
        )
        problems = await verify(url, count)
        for problem in problems:
            print(f"FAIL: {problem}")
        if not problems:
            print("verified: each funded subscription charged exactly once, broke ones paused, audit clean")
        verified = not problems
        return {"seconds": round(wall, 2), "subscriptions": count, "runners": runners, "verified": verified}


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--runner":
        asyncio.run(runner(sys.argv[2], datetime.fromisoformat(sys.argv[3]), int(sys.argv[4])))
        sys.exit(0)
    parser = command_line(__doc__)
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument("--runners", type=int, default=3)
    parser.add_argument("--batch", type=int, default=service.BATCH)
    args = parser.parse_args()
    result = asyncio.run(run(args.subscriptions, args.runners, args.batch))
    sys.exit(0 if result["verified"] else 1)
