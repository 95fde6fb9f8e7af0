"""S1-S3: debits and balance reads through the real HTTP API, beside what PostgreSQL and the server can do.

In rounds, each against the same served instance (`mana-credits serve`, embedded PostgreSQL), with wrk:
`GET /health` (the server's own ceiling), S1 `POST /api/v1/internal/credits/use` spread over 10,000 users
(64 connections), pgbench of the same debit statement spread the same way, S2 the same on one hot account
(32 connections) and its pgbench, S3 `GET /api/v1/credits/balance` with real EdDSA JWTs of 1,000 users
(64 connections), S1f the load of S1 with fractional charges of 0.1 (they accrue; one usage row per ten,
`ratio_to_s1` within the round). Ratios are taken within a round, then the median over the rounds.
Afterwards the ledger audit must be clean and the usage rows at least the 200 answers (wrk does not count
requests still in flight when it stops).

Each pgbench limit is measured twice. `limit_rps` and `ratio`: with as many clients as the scenario has
connections (`limit_clients`: 64 for S1, 32 for S2), the same load issue 11's table measured its limits
with (its S2 limit is 0.19 of S1's; here 0.23 at the scenario's clients, 0.43 at 10). `limit_rps_10_clients`
and `ratio_10_clients`: with PGBENCH_CLIENTS, the limit of the runs committed before 2026-12-01 20:00. On
one hot account the statement's throughput falls as clients queue on the row lock, and 10 clients sit on
the steep part of that curve (python -m bench.limits), so only S2 depends on the count.

    .venv/bin/python -m bench.api [--seconds 10] [--rounds 3] [--workers 2]
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.harness import (
    MemoryWatch,
    command_line,
    cpu_seconds,
    embedded_database,
    jwt_tokens,
    pgbench,
    postmaster_pid,
    served,
    wrk,
)
from mana_credits.db.pool import connect
from mana_credits.ledger.audit import audit
from mana_credits.ledger.repository import _DEBIT

USERS = 10_000
TOKENS = 1_000
S1_CONNECTIONS = 64  # spread over USERS
S2_CONNECTIONS = 32  # one hot account
# About what the server's pool holds; the second limit reported, the one runs before 2026-12-01 20:00 divided
# by. Not the statement's ceiling on one hot account: there 1-2 clients do more than 10 (bench.limits).
PGBENCH_CLIENTS = 10


async def seed(url: str, users: int, credits: int) -> None:
    conn = await connect(url)
    try:
        await conn.execute(
            """
            WITH u AS (SELECT 'bench-' || g AS user_id, $2::int AS credits FROM generate_series(1, $1) g)
            , b AS (INSERT INTO credits.balances (user_id, balance, total_earned)
                    SELECT user_id, credits, credits FROM u)
            INSERT INTO credits.transactions (user_id, type, status, amount, balance_before, balance_after,
              app_id, description, completed_at)
            SELECT user_id, 'grant', 'completed', credits, 0, credits, 'bench', 'seed', now() FROM u
            """,
            users,
            credits,
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def debit_script(users: int) -> str:
    """The ledger's own debit statement (usage row included) for a random user of bench-1..bench-users."""
    values = {  # the statement's parameters in their order (ledger.repository.debit)
        "1": "('bench-' || :uid::text)", "2": ":amount", "3": "true", "4": "'usage'",
        "5": "gen_random_uuid()",
        "6": "'bench'", "7": "'pgbench debit'", "8": "NULL::jsonb", "9": "NULL::text",
    }  # fmt: skip
    sql = re.sub(r"\$(\d+)", lambda m: values[m.group(1)], _DEBIT)
    return f"\\set uid random(1, {users})\n\\set amount 1\n{sql.strip()};\n"


class Measured:
    """wrk against the server, with the CPU the server and PostgreSQL spent per answered request."""

    def __init__(self, base: str, server_pid: int, postgres_pid: int) -> None:
        self.base, self.server_pid, self.postgres_pid = base, server_pid, postgres_pid

    async def run(
        self, mode: str, *, seconds: float, connections: int, env: dict[str, str]
    ) -> tuple[dict[str, Any], int]:
        """The figures of one wrk run, and how many requests were answered 2xx/3xx."""
        server, postgres = cpu_seconds(self.server_pid), cpu_seconds(self.postgres_pid)
        result = await wrk(self.base, mode, seconds=seconds, connections=connections, env=env)
        answered = result.requests - result.errors
        return {
            "rps": round(result.rps), "p50_ms": round(result.p50_ms, 1), "p99_ms": round(result.p99_ms, 1),
            "errors": result.errors, "wrk_cpu": round(result.cpu, 2),
            "server_cpu_us": round(1e6 * (cpu_seconds(self.server_pid) - server) / max(answered, 1)),
            "postgres_cpu_us": round(1e6 * (cpu_seconds(self.postgres_pid) - postgres) / max(answered, 1)),
        }, answered  # fmt: skip


async def limits(url: str, users: int, *, seconds: float, connections: int) -> tuple[float, float]:
    """pgbench of the debit spread over `users`: with the scenario's connections, and with PGBENCH_CLIENTS."""
    script = debit_script(users)
    return (
        await pgbench(url, script, seconds=seconds, clients=connections),
        await pgbench(url, script, seconds=seconds, clients=PGBENCH_CLIENTS),
    )


def ratios(rps: float, limits: tuple[float, float], connections: int) -> dict[str, float]:
    same_clients, pool_clients = limits
    pool = f"{PGBENCH_CLIENTS}_clients"
    return {
        "limit_rps": round(same_clients), "ratio": round(rps / same_clients, 3), "limit_clients": connections,
        f"limit_rps_{pool}": round(pool_clients), f"ratio_{pool}": round(rps / pool_clients, 3),
    }  # fmt: skip


def median_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    return {key: round(statistics.median(r[key] for r in rounds), 2) for key in rounds[0]}


async def run(seconds: float = 10.0, rounds: int = 3, workers: int = 2) -> dict[str, Any]:
    data_dir = tempfile.mkdtemp(prefix="mana-credits-bench-keys-")
    tokens_file = jwt_tokens(Path(data_dir), TOKENS)
    results: dict[str, list[dict[str, Any]]] = {"S1": [], "S1f": [], "S2": [], "S3": []}
    answered = 0  # 2xx debits
    async with embedded_database() as url:
        await seed(url, USERS, 1_000_000_000)
        async with served(url, workers=workers, data_dir=data_dir) as server:
            memory = MemoryWatch(server.pid)
            load = Measured(server.base, server.pid, await postmaster_pid(url))
            for number in range(1, rounds + 1):
                health, _ = await load.run("health", seconds=seconds, connections=64, env={})
                watching = asyncio.create_task(memory.watch())
                s1, s1_answered = await load.run(
                    "debit", seconds=seconds, connections=S1_CONNECTIONS, env={"BENCH_USERS": str(USERS)}
                )
                watching.cancel()
                s1f, _ = await load.run("debit", seconds=seconds, connections=S1_CONNECTIONS,
                                        env={"BENCH_USERS": str(USERS), "BENCH_AMOUNT": "0.1"})  # fmt: skip
                results["S1f"].append({**s1f, "ratio_to_s1": round(s1f["rps"] / s1["rps"], 3)})
                s1_limits = await limits(url, USERS, seconds=seconds, connections=S1_CONNECTIONS)
                s2, s2_answered = await load.run(
                    "debit", seconds=seconds, connections=S2_CONNECTIONS, env={"BENCH_USERS": "1"}
                )
                s2_limits = await limits(url, 1, seconds=seconds, connections=S2_CONNECTIONS)
                s3, _ = await load.run("balance", seconds=seconds, connections=64,
                                    env={"BENCH_TOKENS": str(tokens_file)})  # fmt: skip
                answered += s1_answered + s2_answered
                results["S1"].append({**s1, **ratios(s1["rps"], s1_limits, S1_CONNECTIONS)})
                results["S2"].append({**s2, **ratios(s2["rps"], s2_limits, S2_CONNECTIONS)})
                results["S3"].append(
                    {**s3, "health_rps": health["rps"], "ratio": round(s3["rps"] / health["rps"], 3)}
                )
                print(f"round {number}: " + json.dumps({k: v[-1] for k, v in results.items()}), flush=True)
        conn = await connect(url)
        try:
            offenders = await audit(conn)
            usage = await conn.fetchval(
                "SELECT count(*) FROM credits.transactions "
                "WHERE type = 'usage' AND description = 'bench debit'"
            )
        finally:
            await conn.close()
    errors = sum(r["errors"] for rounds_ in results.values() for r in rounds_)
    print(f"audit: {'clean' if not offenders else f'{len(offenders)} offenders'}; "
          f"{answered} debits answered 2xx, {usage} usage rows; {errors} errors", flush=True)  # fmt: skip
    return {
        "scenarios": {name: median_of(rounds_) for name, rounds_ in results.items()},
        "rss_mb": {"main": round(memory.main, 1), "worker": round(memory.worker, 1)},
        "pss_mb_per_worker": round(memory.pss_per_worker, 1),
        "audit_clean": not offenders and errors == 0 and usage >= answered,
        "workers": workers,
    }


if __name__ == "__main__":
    args = command_line(__doc__, http_rounds=True).parse_args()
    print(json.dumps(asyncio.run(run(args.seconds, args.rounds, args.workers)), indent=2))
