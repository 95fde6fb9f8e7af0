"""Schemathesis fuzzes every operation of our own OpenAPI document against a real served instance
(`mana-credits serve`, its own database): whatever it sends, no answer may be a 5xx.

Purchases and the Stripe webhook are left out: without Stripe configured they answer 503 by design.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from mana_credits.auth import devkey
from mana_credits.config import Settings

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_no_request_makes_a_server_error(
    fresh_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": await fresh_database(),
        "PORT": str(port),
        "MANA_CREDITS_ENV": "development",
        "MANA_CREDITS_SCHEDULER": "false",
        "MANA_CREDITS_DATA_DIR": str(tmp_path),
    }
    server = await asyncio.create_subprocess_exec(
        str(BIN / "mana-credits"), "serve", "--host", "127.0.0.1", "--workers", "1",
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(300):  # bounded wait for start-up (migrations run first)
                try:
                    if (await client.get(f"{base}/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert server.returncode is None, "server exited"
                await asyncio.sleep(0.1)
        settings = Settings(MANA_CREDITS_DATA_DIR=tmp_path)
        token = devkey.mint(
            devkey.load_or_create(settings.dev_key_path), user_id="fuzzer", issuer=settings.jwt_issuers[0],
            audience=settings.JWT_AUDIENCE, email="fuzzer@example.com", role="admin",
        )  # fmt: skip
        fuzz = await asyncio.create_subprocess_exec(
            str(BIN / "schemathesis"), "run", f"{base}/openapi.json",
            "--checks", "not_a_server_error",
            "--exclude-path-regex", r"^/api/v1/(webhooks/stripe|credits/purchase)$",
            "-H", f"Authorization: Bearer {token}", "-H", "X-Service-Key: dev-service-key",
            "--max-examples", "25", "--seed", "20261124", "--no-color",
            cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await fuzz.communicate()
        assert fuzz.returncode == 0, output.decode()[-6000:]
    finally:
        server.terminate()
        await server.wait()
