"""Keyset cursors: an opaque token for (created_at, id) of the last row of a page."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from uuid import UUID

from mana_credits.kit.errors import ValidationFailed


def encode_cursor(created_at: datetime, row_id: UUID) -> str:
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        stamp, _, row_id = base64.urlsafe_b64decode(padded).decode().partition("|")
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None:
            raise ValueError("cursor time without zone")
        return created_at.astimezone(UTC), UUID(row_id)
    except (ValueError, UnicodeDecodeError, OverflowError) as exc:
        raise ValidationFailed("Invalid cursor", details={"fields": [{"field": "cursor"}]}) from exc
