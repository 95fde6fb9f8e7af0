"""The operator CLI, run as a real process: migrate (adopting an old database), seed, audit, token."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
import jwt
import pytest

from mana_credits import ledger
from mana_credits.app import create_app
from mana_credits.db.pool import connect
from mana_credits.ledger.schemas import TxType
from tests.conftest import LiveServer, make_settings
from tests.faults.conftest import running
from tests.support import JwksServer, service_headers

CLI = str(Path(sys.executable).parent / "mana-credits")
LEGACY_SCHEMA = Path(__file__).parent / "fixtures" / "legacy_schema.sql"


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        CLI, *args, env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


async def test_audit_passes_then_names_the_offender(fresh_database: Callable[[], Awaitable[str]]) -> None:
    url = await fresh_database()
    conn = await connect(url)
    try:
        for i in range(5):
            await ledger.credit(conn, f"user-{i}", 10 + i, type=TxType.GRANT, app_id="t", description="g")
            await ledger.debit(conn, f"user-{i}", 3, type=TxType.USAGE, app_id="t", description="u")
        code, out = await run_cli("audit", env={"DATABASE_URL": url})
        assert code == 0, out
        assert "ledger consistent" in out
        await conn.execute("UPDATE credits.balances SET balance = balance + 1 WHERE user_id = 'user-3'")
        code, out = await run_cli("audit", env={"DATABASE_URL": url})
    finally:
        await conn.close()
    assert code == 1
    assert "user-3" in out and "user-2" not in out


async def test_migrate_adopts_a_database_of_the_old_service(pg_admin_url: str, jwks: JwksServer) -> None:
    from mana_credits.db.embedded import database_url

    admin = await asyncpg.connect(pg_admin_url)
    await admin.execute('DROP DATABASE IF EXISTS "legacy_adopt" WITH (FORCE)')
    await admin.execute('CREATE DATABASE "legacy_adopt"')
    await admin.close()
    url = database_url(pg_admin_url, "legacy_adopt")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(LEGACY_SCHEMA.read_text())
        # An old account: bought 100, spent 30, got a welcome grant of 100, and holds 20 for an AI call.
        await conn.execute(
            """
            INSERT INTO credits.balances (user_id, balance, total_earned, total_spent)
            VALUES ('old-user', 150, 200, 30);
            INSERT INTO credits.transactions (user_id, type, status, amount, balance_before, balance_after,
              app_id, description, idempotency_key, metadata, completed_at)
            VALUES ('old-user', 'purchase', 'completed', 100, 0, 100, 'web', 'package', 'k-1', NULL, now()),
                   ('old-user', 'usage', 'completed', -30, 100, 70, 'chat', 'chat', 'k-2', NULL, now()),
                   ('old-user', 'grant', 'completed', 100, 70, 170, 'mana-auth', 'welcome', NULL,
                    '{"referenceId": "welcome-old-user"}', now());
            INSERT INTO credits.reservations (user_id, amount, reason, status)
            VALUES ('old-user', 20, 'research', 'reserved');
            """
        )
        code, out = await run_cli("migrate", env={"DATABASE_URL": url})
        assert code == 0, out
        code, out = await run_cli("migrate", env={"DATABASE_URL": url})  # a second run changes nothing
        assert code == 0, out
        code, out = await run_cli("seed", env={"DATABASE_URL": url})
        assert code == 0 and "4 package(s) added" in out
        code, out = await run_cli("seed", env={"DATABASE_URL": url})
        assert code == 0 and "0 package(s) added" in out
        row = await conn.fetchrow("SELECT balance, reserved FROM credits.balances WHERE user_id = 'old-user'")
        assert row is not None and (row["balance"], row["reserved"]) == (150, 20)
        code, out = await run_cli("audit", env={"DATABASE_URL": url})
        assert code == 0, out

        server = LiveServer(create_app(make_settings(url, jwks)))
        base = await server.start()
        try:
            async with httpx.AsyncClient(base_url=base) as client:
                grant = await client.post(
                    "/api/v1/internal/credits/grant",
                    json={
                        "userId": "old-user",
                        "amount": 100,
                        "reason": "welcome",
                        "referenceId": "welcome-old-user",
                    },
                    headers=service_headers(),
                )
                assert grant.status_code == 200 and grant.json()["alreadyGranted"] is True
                hold_id = await conn.fetchval(
                    "SELECT id FROM credits.reservations WHERE user_id = 'old-user'"
                )
                released = await client.post(
                    "/api/v1/internal/credits/refund-reservation",
                    json={"reservationId": str(hold_id)},
                    headers=service_headers(),
                )
                assert released.status_code == 200 and released.json()["balance"] == 170
        finally:
            await server.stop()
        code, out = await run_cli("audit", env={"DATABASE_URL": url})
        assert code == 0, out
    finally:
        await conn.close()


async def test_token_command_signs_with_the_dev_key(tmp_path: Path) -> None:
    env = {"MANA_CREDITS_DATA_DIR": str(tmp_path), "MANA_AUTH_URL": "http://auth.test"}
    code, out = await run_cli("token", "--user", "alice", "--email", "alice@example.com", "--admin", env=env)
    assert code == 0, out
    token = out.strip().splitlines()[-1]
    from mana_credits.auth import devkey

    public = devkey.public_jwk(devkey.load_or_create(tmp_path / "dev-jwt-key.pem"))
    claims = jwt.decode(token, public.key, algorithms=["EdDSA"], audience="mana", issuer="http://auth.test")
    assert (claims["sub"], claims["email"], claims["role"]) == ("alice", "alice@example.com", "admin")
    assert jwt.get_unverified_header(token)["kid"] == devkey.DEV_KID


async def test_token_command_loads_neither_the_web_framework_nor_the_database_driver(tmp_path: Path) -> None:
    # What makes `token` (and every CLI start) slow is importing what it does not use.
    probe = (
        "import sys\n"
        "from mana_credits.cli import app\n"
        "try:\n"
        "    app(['token', '--user', 'alice'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = {'litestar', 'asyncpg', 'stripe', 'httpx'}\n"
        "print(sorted({name.split('.')[0] for name in sys.modules} & heavy))"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", probe, env={**os.environ, "MANA_CREDITS_DATA_DIR": str(tmp_path)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    lines = out.decode().strip().splitlines()
    assert process.returncode == 0, err.decode()
    assert lines[0].count(".") == 2  # the token itself
    assert lines[-1] == "[]"


async def test_serve_refuses_a_port_another_server_listens_on(
    tmp_path: Path, fresh_database: Callable[[], Awaitable[str]]
) -> None:
    url = await fresh_database()
    async with running(url, tmp_path / "first", MANA_CREDITS_SCHEDULER="false") as first:
        env = {**first.env, "MANA_CREDITS_DATA_DIR": str(tmp_path / "second")}
        second = await asyncio.create_subprocess_exec(
            CLI, "serve", "--host", "127.0.0.1", env=env, start_new_session=True,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            await asyncio.wait_for(second.wait(), 60)
        except TimeoutError:
            os.killpg(second.pid, signal.SIGKILL)  # granian and its workers
            await second.wait()
            raise AssertionError("a second server started on a taken port") from None
        assert second.stdout is not None
        out = await second.stdout.read()
        assert second.returncode != 0
        assert f"port {first.port}" in out.decode() and "already in use" in out.decode()
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{first.base}/health")).status_code == 200


@pytest.mark.parametrize(
    ("signum", "to_group"),
    [(signal.SIGINT, True), (signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGHUP, True)],
    ids=["ctrl-c", "kill-int", "kill-term", "terminal-closed"],
)
async def test_serve_on_the_embedded_database_stops_on_a_signal(
    tmp_path: Path, signum: signal.Signals, to_group: bool
) -> None:
    """Ctrl-C and a closed terminal signal the command's process group; `kill` and process managers the
    command alone. Either way the server and the embedded database stop, and the command exits."""
    postmaster = tmp_path / "pg" / "postmaster.pid"
    try:
        async with running("", tmp_path, MANA_CREDITS_SCHEDULER="false") as server:  # "": embedded
            assert postmaster.exists()
            server.signal(signum, group=to_group)
            assert await server.wait(30) == 0
            async with httpx.AsyncClient() as http:
                with pytest.raises(httpx.TransportError):
                    await http.get(f"{server.base}/health")
        assert not postmaster.exists(), "the embedded database was left running"
    finally:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
            os.kill(int(postmaster.read_text().split()[0]), signal.SIGQUIT)  # a database left behind


async def test_a_command_beside_serve_shares_the_embedded_database_and_leaves_it_running(
    tmp_path: Path,
) -> None:
    """`audit` (any command) on the embedded database while `serve` runs attaches to the running server and
    leaves it to serve: the database stops only with its last user, here Ctrl-C on serve."""
    postmaster = tmp_path / "pg" / "postmaster.pid"
    env = {"MANA_CREDITS_SCHEDULER": "false", "MANA_SERVICE_KEY": "test-service-key"}
    try:
        async with running("", tmp_path, **env) as server:  # "": embedded
            command_env = {**server.env, "DATABASE_URL": ""}
            for _ in range(2):
                code, out = await run_cli("audit", env=command_env)
                assert code == 0 and "ledger consistent" in out, out
            async with httpx.AsyncClient(base_url=server.base, timeout=30) as http:
                grant = {"userId": "beside", "amount": 10, "reason": "test", "referenceId": "beside-1"}
                granted = await http.post(
                    "/api/v1/internal/credits/grant", json=grant, headers=service_headers()
                )
                assert granted.status_code == 200, granted.text
                use = {"userId": "beside", "amount": 4, "appId": "tests", "description": "after audits"}
                used = await http.post("/api/v1/internal/credits/use", json=use, headers=service_headers())
                assert used.status_code == 200, used.text
                assert used.json()["newBalance"]["balance"] == 6
            server.signal(signal.SIGINT)  # Ctrl-C
            assert await server.wait(30) == 0
        assert not postmaster.exists(), "the embedded database was left running"
    finally:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
            os.kill(int(postmaster.read_text().split()[0]), signal.SIGQUIT)  # a database left behind
