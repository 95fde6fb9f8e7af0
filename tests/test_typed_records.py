"""Repositories return typed records: an asyncpg.Record never leaves the SQL that read it. Walks the AST of
src/ and fails on a function that returns a Record, or takes one, outside the ledger and db/ (whose hot
paths build their structs themselves) and the row-to-struct constructors."""

from __future__ import annotations

import ast
from pathlib import Path

import mana_credits

SRC = Path(mana_credits.__file__).parent
# Packages that may pass Records around, and why.
ALLOWED = {
    "ledger": "the money path builds its structs from the rows itself, without a copy in between",
    "db": "pool and migrations",
}
# Functions that exist to turn a Record into a struct.
CONSTRUCTORS = {"from_row", "from_record"}


def _mentions_record(annotation: ast.expr | None) -> bool:
    return annotation is not None and "Record" in ast.unparse(annotation)


def record_signatures(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        where = f"{path.relative_to(SRC)}:{node.lineno} {node.name}"
        if _mentions_record(node.returns):
            found.append(f"{where} returns a Record")
        parameters = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        if node.name not in CONSTRUCTORS and any(_mentions_record(p.annotation) for p in parameters):
            found.append(f"{where} takes a Record")
    return found


def checked(path: Path) -> bool:
    return path.relative_to(SRC).parts[0] not in ALLOWED and path != SRC / "kit" / "records.py"


def test_no_record_leaves_a_repository() -> None:
    leaks = [sig for path in sorted(SRC.rglob("*.py")) if checked(path) for sig in record_signatures(path)]
    assert leaks == [], "return a msgspec Struct (kit.records.from_record) instead"


def test_the_walk_sees_records() -> None:
    """Guards the guard: the ledger's row helper and the struct constructors mention Records."""
    assert record_signatures(SRC / "ledger" / "repository.py")
    assert not checked(SRC / "ledger" / "repository.py")
    assert "from_row" in (SRC / "payments" / "schemas.py").read_text()
    assert checked(SRC / "payments" / "repository.py")
