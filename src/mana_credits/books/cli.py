"""`mana-credits statement`: the month's statement as a table, CSV or JSON (exit 1 when it does not
reconcile, so it can run as a monthly job)."""

from __future__ import annotations

import csv
import sys
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import typer

from mana_credits.config import Settings
from mana_credits.kit.cli import answer, console, with_connection

if TYPE_CHECKING:  # the database driver loads with the command, not with every `mana-credits` start
    from mana_credits.books.reconcile import Report
    from mana_credits.books.schemas import Statement

stripe_app = typer.Typer(no_args_is_help=True)


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def _last_month() -> str:
    first = datetime.now(ZoneInfo("Europe/Berlin")).replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


def statement(
    month: str = typer.Option(
        None, "--month", help="YYYY-MM, a calendar month in Europe/Berlin (default: last month)"
    ),
    format_: Format = typer.Option(Format.table, "--format", help="table, csv or json"),
) -> None:
    """The month's statement: credits owed at its first and last instant, every flow between, and the
    reconciliation (exit 1 and the difference with its users when it does not reconcile)."""
    from mana_credits.books import service
    from mana_credits.kit.errors import ValidationFailed

    chosen = month or _last_month()
    try:
        service.month_bounds(chosen)
    except ValidationFailed as exc:
        console.print(f"[red]{exc.message}[/red]", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from exc
    found = with_connection(lambda conn: service.build(conn, chosen))
    if format_ is Format.json:
        import msgspec

        sys.stdout.write(msgspec.json.format(msgspec.json.encode(found).decode()) + "\n")
    elif format_ is Format.csv:
        _csv(found)
    else:
        _table(found)
    if not found.reconciled:
        console.print(f"[red]the statement of {chosen} does not reconcile[/red]", soft_wrap=True)
        raise typer.Exit(1)


def _euros(cents: int | None) -> str:
    return "" if cents is None else f"{cents / 100:.2f}"


def _csv(found: Statement) -> None:
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["section", "kind", "label", "detail", "direction", "count", "credits", "euros"])
    for name, position in (("opening", found.opening), ("closing", found.closing)):
        out.writerow(
            [name, "outstanding", "balance + reserved", "", "", position.users, position.outstanding, ""]
        )
        out.writerow([name, "reserved", "held by open holds", "", "", "", position.reserved, ""])
    for flow in found.flows:
        out.writerow(
            ["flow", flow.kind, flow.label, flow.detail, flow.direction, flow.count, flow.credits,
             _euros(flow.euro_cents)]
        )  # fmt: skip
    holds = found.holds
    for kind, count, credits in (
        ("opened", holds.opened, holds.opened_credits),
        ("committed", holds.committed, holds.committed_credits),
        ("released", holds.released, holds.released_credits),
    ):
        out.writerow(["holds", kind, f"holds {kind}", "", "", count, credits, ""])
    erased = found.erased_accounts
    out.writerow(["erased", "in_month", "accounts erased", "", "", erased.erased_in_month,
                  erased.erased_in_month_credits, ""])  # fmt: skip
    out.writerow(["erased", "holding", "erased accounts holding credits", "", "", erased.holding_at_closing,
                  erased.credits_at_closing, ""])  # fmt: skip
    for problem in found.problems:
        out.writerow(
            ["problem", problem.check, problem.message, "", "", problem.user_count, problem.difference, ""]
        )


def _table(found: Statement) -> None:
    from rich.table import Table

    table = Table(
        title=f"Statement {found.month} ({found.timezone}, {found.start:%Y-%m-%d %H:%M %z} to "
        f"{found.end:%Y-%m-%d %H:%M %z})",
        title_justify="left",
    )
    for column, justify in (("", "left"), ("detail", "left"), ("count", "right"), ("credits", "right"),
                            ("euros", "right")):  # fmt: skip
        table.add_column(column, justify=justify)  # type: ignore[arg-type]

    def position(name: str, at: str) -> None:
        held = getattr(found, name)
        detail = f"at {at}: balances {held.balance} + reserved {held.reserved}"
        table.add_row(
            f"[bold]{name} outstanding[/bold]", detail, str(held.users), f"[bold]{held.outstanding}[/bold]"
        )

    position("opening", f"{found.start:%Y-%m-%d %H:%M}")
    for flow in found.flows:
        sign = "+" if flow.direction == "in" else "-"
        table.add_row(f"{sign} {flow.label}", flow.detail, str(flow.count), f"{sign}{flow.credits}",
                      _euros(flow.euro_cents))  # fmt: skip
    table.add_row("= opening + inflow - outflow", f"in {found.inflow}, out {found.outflow}", "",
                  str(found.opening.outstanding + found.inflow - found.outflow), "")  # fmt: skip
    position("closing", f"{found.end:%Y-%m-%d %H:%M}")
    answer.print(table)
    holds, erased = found.holds, found.erased_accounts
    answer.print(
        f"holds (inside the outstanding credits): {holds.opened} opened ({holds.opened_credits} credits), "
        f"{holds.committed} committed ({holds.committed_credits} spent), {holds.released} released "
        f"({holds.released_credits}); reserved {holds.reserved_at_opening} at opening, "
        f"{holds.reserved_at_closing} at closing",
        soft_wrap=True, highlight=False,
    )  # fmt: skip
    answer.print(
        f"erased accounts: {erased.erased_in_month} erased this month "
        f"(holding {erased.erased_in_month_credits}); "
        f"{erased.holding_at_closing} erased accounts hold {erased.credits_at_closing} credits at closing",
        soft_wrap=True, highlight=False,
    )  # fmt: skip
    if found.reconciled:
        agree = "the ledger and the balances agree at both instants"
        answer.print(f"[green]reconciled[/green]: {agree}", soft_wrap=True)
    for problem in found.problems:
        answer.print(f"[red]does not reconcile[/red] ({problem.check}): {problem.message}", soft_wrap=True,
                     highlight=False)  # fmt: skip


@stripe_app.command("reconcile")
def reconcile(
    since: datetime = typer.Option(
        ..., "--since", formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M"], help="from this day (Europe/Berlin) on"
    ),
    fix: bool = typer.Option(False, "--fix", help="apply what lost webhooks missed, as the webhook would"),
) -> None:
    """Match Stripe's payments, refunds and disputes since a day against our purchases and ledger rows;
    exit 1 while a discrepancy is left for a person (or, without --fix, any is found)."""
    import asyncio

    from mana_credits.kit.cli import database, refuse

    settings = Settings()
    if not settings.STRIPE_SECRET_KEY:
        refuse("STRIPE_SECRET_KEY is not set: there is no Stripe account to reconcile with")
    start = since.replace(tzinfo=ZoneInfo("Europe/Berlin"))
    with database(settings) as url:
        report = asyncio.run(_reconcile(url, settings, start, fix))
    _print_report(report)
    if report.open:
        raise typer.Exit(1)


async def _reconcile(url: str, settings: Settings, since: datetime, fix: bool) -> Report:
    from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

    from mana_credits.books import reconcile as books_reconcile
    from mana_credits.db.pool import connect
    from mana_credits.payments.stripe_client import StripeGateway

    stripe = StripeGateway(settings)
    conn = await connect(url)
    columns = (SpinnerColumn(), TextColumn("{task.description}: {task.completed}"), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=not sys.stderr.isatty()) as progress:
            tasks: dict[str, TaskID] = {}

            def tick(name: str) -> None:
                if name not in tasks:
                    tasks[name] = progress.add_task(f"read from Stripe: {name.replace('_', ' ')}", total=None)
                progress.advance(tasks[name])

            return await books_reconcile.reconcile(conn, stripe, since, fix=fix, tick=tick)
    finally:
        await conn.close()
        await stripe.aclose()


def _print_report(report: Report) -> None:
    from mana_credits.books.reconcile import KINDS

    seen = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in report.seen.items()) or "nothing"
    answer.print(
        f"Stripe since {report.since:%Y-%m-%d %H:%M %Z}: read {seen}", soft_wrap=True, highlight=False
    )
    for finding in report.findings:
        state = "[green]fixed[/green]" if finding.fixed else "[red]for a person[/red]"
        if not finding.fixed and finding.fixable:
            # Applied but refused (the webhook intake logs why, e.g. metadata naming another user).
            state = (
                "[red]not applied: see the log[/red]"
                if report.fixing
                else "[yellow]fixable with --fix[/yellow]"
            )
        answer.print(
            f"{KINDS[finding.kind]}: {finding.stripe_id}, purchase {finding.purchase_id or '-'} of "
            f"{finding.user_id or '-'}: {finding.detail} -> {state}",
            soft_wrap=True, highlight=False,
        )  # fmt: skip
    fixed = sum(1 for finding in report.findings if finding.fixed)
    summary = f"{len(report.findings)} discrepancies, {fixed} fixed, {len(report.open)} open"
    answer.print(f"[{'red' if report.open else 'green'}]{summary}[/]", soft_wrap=True, highlight=False)
