"""`mana-credits billing run`: charge every due cloud-sync subscription now, then send queued emails.

Safe beside running servers: rows are claimed with SKIP LOCKED, so nothing is charged twice.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mana_credits.config import Settings
from mana_credits.kit.cli import AS_OF_FORMATS, AS_OF_HELP, answer, as_of, console, database

if TYPE_CHECKING:  # the service imports the web framework: load it only when a command runs
    from mana_credits.notifications.service import DeliveryResult
    from mana_credits.sync_billing.schemas import RenewalResult

app = typer.Typer(no_args_is_help=True)


@app.command()
def run(
    batch: int = typer.Option(500, min=1, max=10_000, help="subscriptions per transaction"),
    notify: bool = typer.Option(True, help="deliver queued emails to mana-notify afterwards"),
    moved: datetime | None = typer.Option(None, "--as-of", formats=AS_OF_FORMATS, help=AS_OF_HELP),
) -> None:
    """Renew every due subscription (pausing those without enough credits)."""
    settings = Settings()
    now = as_of(settings, moved)
    with database(settings) as url:
        renewed, delivered = asyncio.run(_run(settings, url, now, batch=batch, notify=notify))
    answer.print(
        f"[green]{renewed.charged} charged[/green], {renewed.paused} paused, "
        f"{renewed.deactivated} ended, [red]{renewed.errors} errors[/red] of {renewed.total}",
        soft_wrap=True,
    )
    if delivered is not None:
        answer.print(
            f"emails: {delivered.delivered} delivered, {delivered.failed} still queued", soft_wrap=True
        )
    if renewed.errors:
        raise typer.Exit(1)


async def _run(
    settings: Settings, url: str, now: datetime, *, batch: int, notify: bool
) -> tuple[RenewalResult, DeliveryResult | None]:
    import httpx

    from mana_credits.db.pool import create_pool
    from mana_credits.kit.clock import Clock
    from mana_credits.notifications.service import Notifier
    from mana_credits.sync_billing import repository, service

    clock = Clock()
    pool = await create_pool(url, size=2)
    try:
        async with pool.acquire() as conn:
            due = await repository.count_due(conn, now)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=not sys.stderr.isatty()) as progress:
            task = progress.add_task("renewing subscriptions", total=due)
            renewed = await service.charge_recurring(
                pool,
                now,
                resume=service.resume_url(settings.WEB_APP_URL),
                batch=batch,
                progress=lambda count: progress.advance(task, count),
            )
        if not notify:
            return renewed, None
        async with httpx.AsyncClient() as http:
            notifier = Notifier(
                pool=pool,
                http=http,
                clock=clock,
                notify_url=settings.MANA_NOTIFY_URL,
                service_key=settings.MANA_SERVICE_KEY,
            )
            return renewed, await notifier.deliver_due()
    finally:
        await pool.close()
