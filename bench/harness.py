"""Shared pieces for benchmarks: an embedded PostgreSQL in a temp folder and a served instance."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from mana_credits.db.embedded import EmbeddedPostgres, database_url, ensure_database
from mana_credits.db.migrate import upgrade_async

SERVICE_KEY = "bench-service-key"


@contextlib.asynccontextmanager
async def embedded_database(name: str = "bench") -> AsyncIterator[str]:
    folder = Path(tempfile.mkdtemp(prefix="mana-credits-bench-"))
    server = EmbeddedPostgres(folder / "pg")
    try:
        admin = server.start()
        await ensure_database(admin, name)
        url = database_url(admin, name)
        await upgrade_async(url)
        yield url
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def served(url: str, *, workers: int = 2, data_dir: str | None = None) -> AsyncIterator[str]:
    """`mana-credits serve` as a real process (granian), bound to loopback.

    With `data_dir`, development mode: it trusts tokens from `mana_credits.auth.devkey` kept there.
    """
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "PORT": str(port),
        "MANA_SERVICE_KEY": SERVICE_KEY,
        "MANA_CREDITS_ENV": "development" if data_dir else "production",
        "MANA_CREDITS_SCHEDULER": "false",
        "MANA_CREDITS_DATA_DIR": data_dir or tempfile.mkdtemp(prefix="mana-credits-bench-data-"),
    }
    cli = str(Path(sys.executable).parent / "mana-credits")
    process = await asyncio.create_subprocess_exec(
        cli, "serve", "--host", "127.0.0.1", "--workers", str(workers),
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient() as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{base}/ready")).status_code == 200:
                        break
                if time.monotonic() > deadline or process.returncode is not None:
                    raise RuntimeError("server did not become ready")
                await asyncio.sleep(0.2)
        yield base
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=30)
