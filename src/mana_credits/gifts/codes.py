"""Gift codes: random from a cryptographic RNG, typed by hand, so lookups forgive case, spaces and dashes."""

from __future__ import annotations

import re
import secrets

# No I, O, 0, 1: nothing a reader can confuse.
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
# Legacy codes may be longer or use other letters; anything else cannot be a code.
_PLAUSIBLE = re.compile(r"[A-Z0-9]{4,64}")


def generate(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def normalize(raw: str) -> str | None:
    """The canonical form of a typed code, or None when it cannot be one."""
    code = re.sub(r"[\s\-]", "", raw).upper()
    return code if _PLAUSIBLE.fullmatch(code) else None
