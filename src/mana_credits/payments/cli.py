"""`mana-credits packages …`: list, add and deactivate credit packages."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)
