"""`mana-credits gifts …`: the expiry sweep and other operator commands."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from typing import TYPE_CHECKING

import typer
from rich.progress import Progress

from mana_credits.config import Settings
from mana_credits.kit.cli import AS_OF_FORMATS, AS_OF_HELP, answer, as_of, console, database

if TYPE_CHECKING:
    from mana_credits.gifts.schemas import SweepResult

app = typer.Typer(no_args_is_help=True)


@app.command()
def expire(
    batch: int = typer.Option(200, min=1, max=10_000, help="gifts per transaction"),
    moved: datetime | None = typer.Option(None, "--as-of", formats=AS_OF_FORMATS, help=AS_OF_HELP),
) -> None:
    """Refund every expired, unredeemed gift to its creator now (safe beside running servers)."""
    settings = Settings()
    now = as_of(settings, moved)
    with database(settings) as url:
        result = asyncio.run(_expire(url, batch, now))
    answer.print(
        f"[green]{result.expired} gift(s) expired, {result.refunded_credits} credit(s) refunded[/green]",
        soft_wrap=True,
    )


async def _expire(url: str, batch: int, now: datetime) -> SweepResult:
    from mana_credits.db.pool import create_pool
    from mana_credits.gifts import repository, tasks

    pool = await create_pool(url, size=1)
    try:
        async with pool.acquire() as conn:
            due = await repository.count_expired_due(conn, now)
        with Progress(console=console, transient=not sys.stderr.isatty()) as progress:
            task = progress.add_task("expiring gifts", total=due)
            return await tasks.sweep(pool, now, batch, on_batch=lambda n: progress.advance(task, n))
    finally:
        await pool.close()
