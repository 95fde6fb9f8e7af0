"""One layout for every domain, kept by a machine: the convention ARCHITECTURE.md states (each domain's
docstring points there), and the parts of it a test can check (only endpoints speak HTTP, errors live in
errors.py, the API's camelCase types in schemas.py)."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path
from types import ModuleType

import msgspec
import pytest

import mana_credits
from mana_credits.kit.errors import CreditsError

DOMAINS = [
    "accounts", "books", "credits", "gifts", "ledger", "notifications", "payments", "support", "sync_billing",
]  # fmt: skip
CONVENTION = """\
Layout, the same in every domain: endpoints.py HTTP only (routes, status, headers); service.py the rules;
repository.py the SQL (only ledger/ moves credits); schemas.py wire types (bodies, answers); errors.py the
domain's errors (shared ones: kit/errors.py); cli.py commands; tasks.py jobs; a big topic: its own module."""


def modules(domain: str) -> list[ModuleType]:
    package = importlib.import_module(f"mana_credits.{domain}")
    return [
        importlib.import_module(f"{package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
    ]


def own_classes(module: ModuleType) -> list[type]:
    return [
        cls for _, cls in inspect.getmembers(module, inspect.isclass) if cls.__module__ == module.__name__
    ]


def imports_litestar(module: ModuleType) -> bool:
    tree = ast.parse(Path(inspect.getfile(module)).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "litestar" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "litestar":
            return True
    return False


def test_every_domain_is_listed() -> None:
    packages = {info.name for info in pkgutil.iter_modules(mana_credits.__path__) if info.ispkg}
    shared = {"auth", "db", "kit", "web", "client"}
    assert packages - shared == set(DOMAINS)


ARCHITECTURE = Path(__file__).parents[1] / "ARCHITECTURE.md"


def test_the_architecture_document_states_the_convention() -> None:
    assert CONVENTION in ARCHITECTURE.read_text()


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_domain_points_at_it(domain: str) -> None:
    assert "ARCHITECTURE.md" in (importlib.import_module(f"mana_credits.{domain}").__doc__ or "")


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_domain_follows_it(domain: str) -> None:
    found = modules(domain)
    names = {module.__name__.rsplit(".", 1)[1] for module in found}
    assert "models" not in names, "wire types go to schemas.py"
    for module in found:
        name = module.__name__.rsplit(".", 1)[1]
        if name not in ("endpoints", "lanes"):
            assert not imports_litestar(module), (
                f"{module.__name__}: only endpoints.py (and lanes) speak HTTP"
            )
        for cls in own_classes(module):
            if issubclass(cls, CreditsError):
                assert name == "errors", f"{cls.__qualname__}: domain errors live in {domain}/errors.py"
            camel = issubclass(cls, msgspec.Struct) and any(
                encoded != field
                for field, encoded in zip(cls.__struct_fields__, cls.__struct_encode_fields__, strict=True)
            )
            if camel:
                assert name == "schemas", f"{cls.__qualname__}: API types live in {domain}/schemas.py"
