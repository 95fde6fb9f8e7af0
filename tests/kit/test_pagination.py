"""Keyset cursors round-trip exactly and refuse anything they did not make."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mana_credits.kit.errors import ValidationFailed
from mana_credits.kit.pagination import decode_cursor, encode_cursor


@given(st.datetimes(timezones=st.just(UTC)), st.uuids())
def test_cursor_round_trips(created_at: datetime, row_id: UUID) -> None:
    assert decode_cursor(encode_cursor(created_at, row_id)) == (created_at, row_id)


def test_cursor_is_url_safe_without_padding() -> None:
    cursor = encode_cursor(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), uuid4())
    assert "=" not in cursor and "+" not in cursor and "/" not in cursor


def test_cursor_in_another_zone_comes_back_in_utc() -> None:
    berlin = timezone(timedelta(hours=1))
    row_id = uuid4()
    created_at, decoded_id = decode_cursor(encode_cursor(datetime(2026, 1, 1, 12, tzinfo=berlin), row_id))
    assert created_at == datetime(2026, 1, 1, 11, tzinfo=UTC) and created_at.tzinfo is UTC
    assert decoded_id == row_id


def raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        raw("not-a-date|" + str(uuid4())),
        raw("2026-01-01T00:00:00|" + str(uuid4())),  # no zone
        raw("2026-01-01T00:00:00+00:00|not-a-uuid"),
        raw("2026-01-01T00:00:00+00:00"),
        base64.urlsafe_b64encode(b"\xff\xfe|x").decode(),
    ],
)
def test_bad_cursor_is_a_validation_error(cursor: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        decode_cursor(cursor)
    assert refused.value.status == 400 and refused.value.details == {"fields": [{"field": "cursor"}]}
