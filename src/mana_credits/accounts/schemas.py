"""Wire types of account deletion."""

from __future__ import annotations

import msgspec


class Erased(msgspec.Struct, rename="camel", kw_only=True):
    success: bool
    # Rows erased or anonymised (mana-auth adds it to its deletion report).
    deleted_count: int
