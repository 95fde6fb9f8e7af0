"""Supporting a user from the CLI, run as real processes against a real database."""

from __future__ import annotations

import asyncio
import csv
import io
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from mana_credits import ledger
from mana_credits.credits import holds
from mana_credits.db.pool import connect
from mana_credits.ledger.schemas import TxType
from tests.gifts.conftest import make_gift
from tests.test_cli import CLI


async def run_split(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Run the CLI; (exit code, stdout, stderr) kept apart (export writes CSV to stdout only)."""
    process = await asyncio.create_subprocess_exec(
        CLI, *args, env={**os.environ, **env, "COLUMNS": "200"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_grant_is_idempotent_and_goes_through_the_ledger(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    env = {"DATABASE_URL": await fresh_database()}
    code, out, err = await run_split("grant", "support-user", "250", "--reason", "outage apology", env=env)
    assert code == 0, err
    assert "granted 250" in out and "balance 250" in out
    code, out, err = await run_split("grant", "support-user", "250", "--reason", "outage apology", env=env)
    assert code == 0, err
    assert "already granted" in out
    code, out, err = await run_split(
        "grant", "support-user", "250", "--reason", "outage apology", "--reference", "second", env=env
    )
    assert code == 0 and "granted 250" in out
    conn = await connect(env["DATABASE_URL"])
    try:
        rows = await conn.fetch(
            "SELECT amount, type::text, app_id FROM credits.transactions WHERE user_id = 'support-user'"
        )
        balance = await conn.fetchval("SELECT balance FROM credits.balances WHERE user_id = 'support-user'")
    finally:
        await conn.close()
    assert [(r["amount"], r["type"], r["app_id"]) for r in rows] == [(250, "grant", "support")] * 2
    assert balance == 500


async def test_user_show_lists_balance_holds_sync_and_gifts(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    url = await fresh_database()
    conn = await connect(url)
    try:
        await ledger.credit(conn, "shown", 300, type=TxType.GRANT, app_id="t", description="welcome bonus")
        async with conn.transaction():
            await holds.reserve(
                conn, user_id="shown", amount=25, reason="deep research", app_id="research", ttl_seconds=600,
                now=datetime.now(UTC),
            )  # fmt: skip
        await conn.execute(
            "INSERT INTO credits.sync_subscriptions (user_id, active, next_charge_at, anchor_day) "
            "VALUES ('shown', true, now() + interval '3 days', 1)"
        )
        await make_gift(conn, "shown", 40, expired=False)
    finally:
        await conn.close()
    code, out, err = await run_split("user", "show", "shown", env={"DATABASE_URL": url})
    assert code == 0, err
    text = out  # the answer on stdout, so `| grep` and `| less` see it
    assert "balance 275" in text and "reserved 25" in text
    assert "welcome bonus" in text and "deep research" in text
    assert "cloud sync: active, monthly" in text
    assert "gifts created" in text and "40" in text


async def test_user_show_says_paused_cancelled_and_gifted(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    url = await fresh_database()
    conn = await connect(url)
    try:
        await conn.execute(
            "INSERT INTO credits.sync_subscriptions (user_id, active, next_charge_at, paused_at, anchor_day) "
            "VALUES ('paused', false, NULL, '2026-11-07 10:00+00', 7)"
        )
        await conn.execute(
            "INSERT INTO credits.sync_subscriptions "
            "(user_id, active, next_charge_at, cancel_at_period_end, current_period_end, anchor_day) "
            "VALUES ('cancelled', true, NULL, true, '2027-01-03 08:00+00', 3)"
        )
        await conn.execute(
            "INSERT INTO credits.sync_subscriptions (user_id, active, is_gifted, gifted_by, gifted_at) "
            "VALUES ('gifted', true, true, 'admin-1', '2026-10-01 12:00+00')"
        )
    finally:
        await conn.close()
    expected = {
        "paused": "cloud sync: paused since 2026-11-07 10:00 UTC",
        "cancelled": "cloud sync: cancelled, active until 2027-01-03 08:00 UTC",
        "gifted": "cloud sync: gifted by admin-1 since 2026-10-01 12:00 UTC",
    }
    for user, line in expected.items():
        code, out, err = await run_split("user", "show", user, env={"DATABASE_URL": url})
        assert code == 0, err
        assert line in out
        assert "None" not in out + err


async def test_export_streams_the_ledger_as_csv(fresh_database: Callable[[], Awaitable[str]]) -> None:
    url = await fresh_database()
    conn = await connect(url)
    try:
        for i in range(2500):
            await ledger.credit(
                conn, f"exp-{i % 3}", 1 + i, type=TxType.GRANT, app_id="t", description=f"g{i}"
            )
        await conn.execute(
            "UPDATE credits.transactions SET created_at = $1 WHERE description = 'g0'",
            datetime.now(UTC) - timedelta(days=30),
        )
    finally:
        await conn.close()
    since = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    code, out, err = await run_split("export", "--since", since, env={"DATABASE_URL": url})
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 2499  # g0 is older than --since
    assert sum(int(row["amount"]) for row in rows) == sum(range(2, 2501))
    assert "2499 ledger row(s) exported" in err
    code, out, err = await run_split("export", "--since", since, "--user", "exp-1", env={"DATABASE_URL": url})
    assert code == 0, err
    assert {row["user_id"] for row in csv.DictReader(io.StringIO(out))} == {"exp-1"}
    code, _, err = await run_split("export", "--since", "yesterday", env={"DATABASE_URL": url})
    assert code == 2 and "--since" in err


async def test_audit_fix_report_says_what_to_decide(fresh_database: Callable[[], Awaitable[str]]) -> None:
    url = await fresh_database()
    conn = await connect(url)
    try:
        await ledger.credit(conn, "drifted", 100, type=TxType.GRANT, app_id="t", description="g")
        await conn.execute("UPDATE credits.balances SET balance = 130 WHERE user_id = 'drifted'")
        await conn.execute(
            "INSERT INTO credits.stripe_unmatched_returns (payment_intent_id, amount_refunded) "
            "VALUES ('pi_lost', 500)"
        )
    finally:
        await conn.close()
    code, out, err = await run_split("audit", "--fix-report", env={"DATABASE_URL": url})
    text = out + err
    assert code == 1
    assert "drifted" in text and "+30" in text and "set balance to 100" in text
    assert "pi_lost" in text


async def test_every_command_answers_on_stdout_and_talks_on_stderr(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    """What a command is run for is on stdout (pipe it); progress, logs and refusals are on stderr."""
    env = {"DATABASE_URL": await fresh_database(), "MANA_CREDITS_ENV": "development"}
    answers = [
        (("migrate",), "migrations applied"),
        (("seed",), "package(s) added"),
        (("packages", "list"), "Credit packages"),
        (("grant", "piped", "5", "--reason", "r"), "granted 5"),
        (("user", "show", "piped"), "last ledger rows"),
        (("audit",), "ledger consistent"),
        (("billing", "run", "--no-notify"), "charged"),
        (("gifts", "expire"), "gift(s) expired"),
    ]
    for args, expected in answers:
        code, out, err = await run_split(*args, env=env)
        assert code == 0, (args, err)
        assert expected in out and expected not in err, (args, out, err)
    code, out, err = await run_split("packages", "deactivate", "no-such-package", env=env)
    assert code == 1 and "no package" in err and not out.strip()
