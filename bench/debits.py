"""Debit and balance-read throughput through the real HTTP API (granian, 2 workers, embedded PostgreSQL).

Scenarios: debits (`POST /api/v1/internal/credits/use`) spread over many users and on one hot account;
then `GET /api/v1/credits/balance` with real EdDSA JWTs (one per user, verified once, then cached).
Afterwards the ledger audit must be clean and the usage rows must equal the 200 answers.

    .venv/bin/python -m bench.debits [--seconds 10] [--concurrency 64] [--users 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

from bench.harness import SERVICE_KEY, embedded_database, served
from mana_credits.auth import devkey
from mana_credits.config import Settings
from mana_credits.db.pool import connect
from mana_credits.ledger.audit import audit


async def seed(url: str, users: int, credits: int) -> None:
    conn = await connect(url)
    try:
        await conn.execute(
            """
            WITH u AS (SELECT 'bench-' || g AS user_id FROM generate_series(1, $1) g)
            , b AS (INSERT INTO credits.balances (user_id, balance, total_earned)
                    SELECT user_id, $2, $2 FROM u)
            INSERT INTO credits.transactions (user_id, type, status, amount, balance_before, balance_after,
              app_id, description, completed_at)
            SELECT user_id, 'grant', 'completed', $2, 0, $2, 'bench', 'seed', now() FROM u
            """,
            users,
            credits,
        )
    finally:
        await conn.close()


Request = tuple[str, str, dict[str, str], dict[str, Any] | None]


async def load(
    base: str, requests: Iterator[Request], seconds: float, concurrency: int
) -> tuple[int, int, list[float]]:
    """A closed loop of `concurrency` clients (aiohttp: httpx's pool itself tops out near 250 req/s here)."""
    ok = refused = 0
    latencies: list[float] = []
    stop = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base_url=base, connector=connector) as session:

        async def worker() -> None:
            nonlocal ok, refused
            while time.monotonic() < stop:
                method, path, headers, body = next(requests)
                started = time.perf_counter()
                async with session.request(method, path, json=body, headers=headers) as response:
                    await response.read()
                    latencies.append(time.perf_counter() - started)
                    if response.status == 200:
                        ok += 1
                    elif response.status == 402:
                        refused += 1
                    else:
                        raise RuntimeError(f"unexpected {response.status}")

        await asyncio.gather(*[worker() for _ in range(concurrency)])
    return ok, refused, latencies


def debits(user_ids: list[str]) -> Iterator[Request]:
    headers = {"X-Service-Key": SERVICE_KEY, "X-App-Id": "bench"}
    for user_id in itertools.cycle(user_ids):
        yield "POST", "/api/v1/internal/credits/use", headers, {
            "userId": user_id, "amount": 1, "appId": "bench", "description": "bench debit",
        }  # fmt: skip


def balance_reads(tokens: list[str]) -> Iterator[Request]:
    for token in itertools.cycle(tokens):
        yield "GET", "/api/v1/credits/balance", {"Authorization": f"Bearer {token}"}, None


async def scenario(name: str, base: str, requests: Iterator[Request], args: argparse.Namespace) -> None:
    started = time.monotonic()
    ok, refused, latencies = await load(base, requests, args.seconds, args.concurrency)
    elapsed = time.monotonic() - started
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(
        f"{name:<22} {(ok + refused) / elapsed:8.0f} req/s  ok={ok} 402={refused}  "
        f"p50={p50:.1f} ms  p99={p99:.1f} ms  (concurrency {args.concurrency}, {elapsed:.1f} s)"
    )


async def main(args: argparse.Namespace) -> None:
    data_dir = tempfile.mkdtemp(prefix="mana-credits-bench-keys-")
    key = devkey.load_or_create(Path(data_dir) / "dev-jwt-key.pem")
    users = [f"bench-{i}" for i in range(1, args.users + 1)]
    issuer = Settings().jwt_issuers[0]
    tokens = [devkey.mint(key, user_id=user, issuer=issuer, audience="mana") for user in users[:1000]]
    async with embedded_database() as url:
        await seed(url, args.users, 1_000_000)
        async with served(url, data_dir=data_dir) as base:
            await scenario("debits, spread", base, debits(users), args)
            await scenario("debits, hot account", base, debits(["bench-1"]), args)
            await scenario("balance reads (JWT)", base, balance_reads(tokens), args)
        conn = await connect(url)
        try:
            offenders = await audit(conn)
            usage = await conn.fetchval("SELECT count(*) FROM credits.transactions WHERE type = 'usage'")
        finally:
            await conn.close()
        print(f"audit: {'clean' if not offenders else f'{len(offenders)} offenders'}; usage rows: {usage}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--users", type=int, default=10_000)
    asyncio.run(main(parser.parse_args()))
