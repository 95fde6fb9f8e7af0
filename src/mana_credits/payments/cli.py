"""`mana-credits packages …`: list, add and deactivate credit packages."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from mana_credits.kit.cli import answer, console, with_connection

if TYPE_CHECKING:
    from mana_credits.payments.schemas import Package

app = typer.Typer(no_args_is_help=True)


def _euros(cents: int) -> str:
    return f"€{cents // 100},{cents % 100:02d}"


@app.command("list")
def list_packages(
    all_: bool = typer.Option(False, "--all", help="also show deactivated packages"),
) -> None:
    """Show the packages users can buy (with --all, the deactivated ones too)."""
    from rich.table import Table

    from mana_credits.payments import repository

    packages = with_connection(repository.all_packages if all_ else repository.active_packages)
    table = Table(title="Credit packages")
    for column in ("id", "name", "credits", "price", "active", "order", "description"):
        table.add_column(column, justify="right" if column in {"credits", "price", "order"} else "left")
    for package in packages:
        table.add_row(
            str(package.id),
            package.name,
            str(package.credits),
            _euros(package.price_euro_cents),
            "yes" if package.active else "no",
            str(package.sort_order),
            package.description or "",
        )
    answer.print(table)


@app.command()
def add(
    name: str = typer.Argument(..., help="unique package name"),
    credits: int = typer.Option(..., min=1, help="credits the buyer gets"),
    price: int = typer.Option(..., min=1, help="price in euro cents"),
    description: str | None = typer.Option(None, help="shown to buyers"),
    sort_order: int = typer.Option(0, help="position in the list (ascending)"),
) -> None:
    """Add a package (active at once)."""
    from mana_credits.payments import repository

    package: Package | None = with_connection(
        lambda conn: repository.add_package(
            conn,
            name=name,
            credits=credits,
            price_euro_cents=price,
            description=description,
            sort_order=sort_order,
        )
    )
    if package is None:
        console.print(f"[red]a package named {name!r} already exists[/red]")
        raise typer.Exit(1)
    answer.print(
        f"[green]added[/green] {package.name} ({package.id}): {package.credits} credits for {_euros(price)}"
    )


@app.command()
def deactivate(name_or_id: str = typer.Argument(..., help="the package's name or id")) -> None:
    """Stop offering a package; past purchases keep their price and credits."""
    from mana_credits.payments import repository

    package = with_connection(lambda conn: repository.deactivate_package(conn, name_or_id))
    if package is None:
        console.print(f"[red]no package {name_or_id!r}[/red]")
        raise typer.Exit(1)
    answer.print(f"[green]deactivated[/green] {package.name} ({package.id})")
