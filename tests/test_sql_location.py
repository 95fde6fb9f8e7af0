"""SQL runs only in repositories: a rule a machine keeps. Walks the AST of src/ and fails on a call that
executes SQL (conn/pool .execute, .fetch, …) in a module that is not a repository, the ledger or db/."""

from __future__ import annotations

import ast
from pathlib import Path

import mana_credits

SRC = Path(mana_credits.__file__).parent
SQL_METHODS = {
    "execute", "executemany", "fetch", "fetchrow", "fetchval", "fetchmany",
    "copy_records_to_table", "copy_to_table", "copy_from_query", "copy_from_table", "cursor",
}  # fmt: skip
# Modules that may run SQL besides every `repository.py`, and why.
ALLOWED = {
    "ledger": "the only door for money: its statements are the ledger",
    "db": "pool, migrations, embedded server",
    "health.py": "the readiness probe's SELECT 1 is the check itself",
}


def allowed(path: Path) -> bool:
    relative = path.relative_to(SRC)
    return path.name == "repository.py" or relative.parts[0] in ALLOWED


def sql_calls(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        f"{path.relative_to(SRC)}:{node.lineno} .{node.func.attr}()"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in SQL_METHODS
    ]


def test_sql_only_in_repositories() -> None:
    misplaced = [call for path in sorted(SRC.rglob("*.py")) if not allowed(path) for call in sql_calls(path)]
    assert misplaced == [], "move these statements into the domain's repository.py"


def test_the_walk_finds_sql_where_it_belongs() -> None:
    """Guards the guard: the walk sees the statements of a repository and of the ledger."""
    assert sql_calls(SRC / "credits" / "repository.py")
    assert sql_calls(SRC / "ledger" / "repository.py")
    assert not allowed(SRC / "credits" / "holds.py")
