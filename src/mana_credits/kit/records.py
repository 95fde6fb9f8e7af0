"""Database rows to structs: struct fields are named as the row's (snake_case) columns."""

from __future__ import annotations

from typing import Any, TypeVar

import asyncpg
import msgspec

S = TypeVar("S", bound=msgspec.Struct)


def from_record(cls: type[S], row: asyncpg.Record, **computed: Any) -> S:
    """Build `cls` from the columns of the same names; `computed` supplies or replaces fields."""
    values = {name: row[name] for name in cls.__struct_fields__ if name not in computed}
    return cls(**values, **computed)


def from_struct(cls: type[S], source: msgspec.Struct, **computed: Any) -> S:
    """Build `cls` from the same-named fields of another struct (a stored row to what the API shows)."""
    values = {name: getattr(source, name) for name in cls.__struct_fields__ if name not in computed}
    return cls(**values, **computed)
