"""`mana-credits user show | grant | export`: supporting one user from a terminal."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mana_credits.config import Settings
from mana_credits.kit.cli import answer, console, database, with_connection

if TYPE_CHECKING:  # the ledger imports the web framework: `healthcheck` must start fast
    from mana_credits.db.pool import Conn
    from mana_credits.ledger.audit import Offender
    from mana_credits.sync_billing.repository import Subscription

user_app = typer.Typer(no_args_is_help=True)

SUPPORT_APP_ID = "support"


def _table(title: str, rows: Sequence[msgspec.Struct]) -> Table:
    table = Table(title=title, title_justify="left")
    columns = rows[0].__struct_fields__ if rows else ()
    for column in columns or ["(none)"]:
        table.add_column(column)
    for row in rows:
        values = (getattr(row, column) for column in columns)
        table.add_row(*("" if value is None else str(value) for value in values))
    return table


@user_app.command("show")
def show(user_id: str = typer.Argument(..., help="the user's id (JWT sub)")) -> None:
    """Balance, reserved, the last ledger rows, open holds, cloud-sync status and gifts of one user."""
    from mana_credits.support.repository import user_overview

    found = with_connection(lambda conn: user_overview(conn, user_id))
    balance = found.balance
    if balance is None:
        answer.print(f"[yellow]{user_id} has no balance row (never used credits)[/yellow]", soft_wrap=True)
    else:
        answer.print(
            f"[bold]{user_id}[/bold]  balance {balance.balance}  reserved {balance.reserved}  "
            f"earned {balance.total_earned}  spent {balance.total_spent}",
            soft_wrap=True,
            highlight=False,
        )
    answer.print(f"cloud sync: {sync_line(found.sync)}", soft_wrap=True, highlight=False)
    answer.print(_table("last ledger rows", found.transactions))
    answer.print(_table("open holds", found.holds))
    answer.print(_table("gifts created", found.gifts_created))
    answer.print(_table("gifts received", found.gifts_received))


def sync_line(sync: Subscription | None) -> str:
    """A subscription's state in words a supporter can repeat to the user."""
    if sync is None:
        return "never activated"
    if sync.is_gifted:
        return f"gifted by {sync.gifted_by or 'an admin'} since {_day(sync.gifted_at)}"
    if sync.paused_at is not None:
        return f"paused since {_day(sync.paused_at)} (not enough credits), {sync.interval}"
    if sync.active and sync.cancel_at_period_end:
        return f"cancelled, active until {_day(sync.current_period_end)}, {sync.interval}"
    if sync.active:
        return f"active, {sync.interval}, next charge {_day(sync.next_charge_at)}"
    return f"deactivated, {sync.interval}"


def _day(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "unknown"


def grant(
    user_id: str = typer.Argument(..., help="the user's id"),
    amount: int = typer.Argument(..., min=1, max=10_000_000, help="credits (1 credit = 1 euro cent)"),
    reason: str = typer.Option(..., "--reason", help="why, kept in the ledger row"),
    reference: str | None = typer.Option(
        None, help="idempotency reference; default: derived from user, amount and reason"
    ),
) -> None:
    """Grant credits through the ledger, once per reference: the same command again changes nothing."""
    from mana_credits.credits.schemas import GrantResult
    from mana_credits.credits.service import grant_once

    reference = (
        reference or "cli-" + hashlib.sha256(f"{user_id}\0{amount}\0{reason}".encode()).hexdigest()[:24]
    )

    async def run(conn: Conn) -> tuple[GrantResult, bool]:
        async with conn.transaction():
            return await grant_once(
                conn,
                user_id=user_id,
                amount=amount,
                reason=reason,
                reference_id=reference,
                app_id=SUPPORT_APP_ID,
                description=reason,
            )

    result, replayed = with_connection(run)
    done = "[yellow]already granted[/yellow]" if replayed else f"[green]granted {amount}[/green] to {user_id}"
    answer.print(
        f"{done} (reference {reference}); balance {result.new_balance}", soft_wrap=True, highlight=False
    )


def decisions(offender: Offender) -> list[str]:
    """What a person must choose for one user whose balance row disagrees with the ledger."""
    found = []
    if offender.balance + offender.reserved != offender.ledger_total:
        difference = offender.balance + offender.reserved - offender.ledger_total
        found.append(
            f"the balance row holds {difference:+} credit(s) more than the ledger: if the ledger is right, "
            f"set balance to {offender.ledger_total - offender.reserved}; if the balance is right, record "
            "the difference as a ledger row (`mana-credits grant`, or a debit), never both"
        )
    if offender.reserved != offender.held:
        found.append(
            f"reserved is {offender.reserved} but open holds add up to {offender.held}: set reserved to "
            f"{offender.held} unless a hold row is missing"
        )
    if offender.total_earned != offender.ledger_earned or offender.total_spent != offender.ledger_spent:
        found.append(
            "the totals (shown to the user only) can be set to the ledger's: "
            f"earned {offender.ledger_earned}, spent {offender.ledger_spent}"
        )
    return found


def _since(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def export(
    since: str = typer.Option(..., help="ISO date or time (UTC unless it says otherwise)"),
    user: str | None = typer.Option(None, help="only this user's rows"),
) -> None:
    """Write the ledger since a date as CSV to stdout (streamed; progress on stderr)."""
    from mana_credits.support.repository import EXPORT_COLUMNS, count_export, export_rows

    try:
        start = _since(since)
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO date: {since!r}", param_hint="--since") from exc
    writer = csv.writer(sys.stdout)

    async def run(url: str) -> int:
        from mana_credits.db.pool import connect

        conn = await connect(url)
        written = 0
        try:
            total = await count_export(conn, start, user)
            columns = (TextColumn("exporting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, console=console, transient=not sys.stderr.isatty()) as progress:
                task = progress.add_task("export", total=total)
                writer.writerow(EXPORT_COLUMNS)
                async for row in export_rows(conn, start, user):
                    writer.writerow(row)
                    written += 1
                    if written % 1000 == 0:
                        progress.advance(task, 1000)
                progress.update(task, completed=written)
        finally:
            await conn.close()
        return written

    with database(Settings()) as url:
        written = asyncio.run(run(url))
    sys.stdout.flush()
    console.print(f"[green]{written} ledger row(s) exported[/green]", soft_wrap=True)
