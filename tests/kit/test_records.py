"""Rows become structs by column name; computed values supply or replace fields."""

from __future__ import annotations

import asyncpg
import msgspec
import pytest


class Row(msgspec.Struct, rename="camel"):
    user_id: str
    balance: int
    note: str


async def test_from_record_reads_columns_by_field_name(db: asyncpg.Connection) -> None:
    from mana_credits.kit.records import from_record

    record = await db.fetchrow("SELECT 'u-1' AS user_id, 42 AS balance, 'x' AS note, 'ignored' AS extra")
    assert record is not None
    row = from_record(Row, record)
    assert row == Row(user_id="u-1", balance=42, note="x")
    assert msgspec.json.decode(msgspec.json.encode(row)) == {"userId": "u-1", "balance": 42, "note": "x"}


async def test_computed_fields_replace_or_supply_columns(db: asyncpg.Connection) -> None:
    from mana_credits.kit.records import from_record

    record = await db.fetchrow("SELECT 'u-1' AS user_id, 42 AS balance")
    assert record is not None
    assert from_record(Row, record, note="made") == Row(user_id="u-1", balance=42, note="made")
    assert from_record(Row, record, balance=7, note="n").balance == 7


async def test_a_missing_column_is_an_error_not_a_default(db: asyncpg.Connection) -> None:
    from mana_credits.kit.records import from_record

    record = await db.fetchrow("SELECT 'u-1' AS user_id")
    assert record is not None
    with pytest.raises(KeyError):
        from_record(Row, record, note="n")
