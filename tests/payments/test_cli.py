"""`mana-credits packages list|add|deactivate` against the test database."""

from __future__ import annotations

import uuid

from typer.testing import CliRunner

from mana_credits.payments.cli import app


def test_add_list_deactivate(database_url_: str) -> None:
    runner = CliRunner()
    env = {"DATABASE_URL": database_url_, "COLUMNS": "250"}
    name = f"cli-{uuid.uuid4().hex[:8]}"

    added = runner.invoke(
        app, ["add", name, "--credits", "750", "--price", "650", "--sort-order", "9"], env=env
    )
    assert added.exit_code == 0, added.output
    assert "750 credits for €6,50" in added.output

    duplicate = runner.invoke(app, ["add", name, "--credits", "1", "--price", "1"], env=env)
    assert duplicate.exit_code == 1
    assert (runner.invoke(app, ["add", "free", "--credits", "5", "--price", "0"], env=env)).exit_code == 2

    listed = runner.invoke(app, ["list"], env=env)
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if name in line)
    assert "750" in row and "€6,50" in row and "yes" in row

    assert runner.invoke(app, ["deactivate", name], env=env).exit_code == 0
    assert name not in runner.invoke(app, ["list"], env=env).output
    everything = runner.invoke(app, ["list", "--all"], env=env).output
    assert "no" in next(line for line in everything.splitlines() if name in line)
    assert runner.invoke(app, ["deactivate", "no-such-package"], env=env).exit_code == 1
