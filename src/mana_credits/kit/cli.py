"""What every `mana-credits` command shares: the stderr console, the database to act on, one connection.

It sits below the root `cli.py` and the domains' `cli.py` modules, so neither imports the other's helpers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NoReturn, TypeVar

import typer
from rich.console import Console

from mana_credits.config import Settings

if TYPE_CHECKING:
    from mana_credits.db.pool import Conn

# What a command is run for goes to stdout, so `| grep` and `| less` see it; progress, logs and refusals
# go to stderr.
console = Console(stderr=True)
answer = Console()

EMBEDDED_DATABASE = "mana_credits"
PROBE_TIMEOUT_SECONDS = 10

T = TypeVar("T")


@contextmanager
def database(settings: Settings) -> Iterator[str]:
    """DATABASE_URL, or an embedded PostgreSQL under the data dir for as long as the block runs."""
    if settings.DATABASE_URL:
        asyncio.run(_probe(settings.DATABASE_URL))
        yield settings.DATABASE_URL
        return
    from mana_credits.db.embedded import EmbeddedPostgres, database_url, ensure_database

    server = EmbeddedPostgres(settings.MANA_CREDITS_DATA_DIR / "pg")
    console.print(f"[dim]starting embedded PostgreSQL in {server.pgdata}[/dim]", soft_wrap=True)
    admin_url = server.start()
    try:
        asyncio.run(ensure_database(admin_url, EMBEDDED_DATABASE))
        yield database_url(admin_url, EMBEDDED_DATABASE)
    finally:
        server.stop()


AS_OF_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
AS_OF_HELP = "development only: run as if it were this instant (UTC), like a payment provider's test clock"


def as_of(settings: Settings, moved: datetime | None) -> datetime:
    """The instant a job runs at: now, or on a development server a moved clock (try renewals, the pause
    banner and expiry in minutes). Production refuses: there the clock is the one truth of billing."""
    if moved is None:
        return datetime.now(UTC)
    if not settings.is_development:
        refuse("--as-of is for development servers only (MANA_CREDITS_ENV=development)")
    return moved if moved.tzinfo else moved.replace(tzinfo=UTC)


def refuse(reason: str) -> NoReturn:
    """Stop the command with one clear line (exit code 2: configuration, not a failed operation)."""
    console.print(f"[red]refusing to start:[/red] {reason}", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


async def _probe(url: str) -> None:
    import asyncpg

    try:
        conn = await asyncpg.connect(url, timeout=PROBE_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure here is the same operator problem: say which, in one line
        detail = " ".join(str(exc).split()) or "no answer"
        refuse(f"DATABASE_URL cannot be reached ({type(exc).__name__}: {detail})")
    await conn.close()


def with_connection(action: Callable[[Conn], Awaitable[T]], settings: Settings | None = None) -> T:
    """Run `action` on one connection to the command's database and return its result."""
    from mana_credits.db.pool import connect

    async def run(url: str) -> T:
        conn = await connect(url)
        try:
            return await action(conn)
        finally:
            await conn.close()

    with database(settings or Settings()) as url:
        return asyncio.run(run(url))
