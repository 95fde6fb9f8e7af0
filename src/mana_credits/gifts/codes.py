"""Gift codes: random from a cryptographic RNG, typed by hand, so lookups forgive case, spaces and dashes."""

from __future__ import annotations

import re
import secrets
import string

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


_ASCII_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def fold_email(email: str | None) -> str | None:
    """An e-mail as gifts compare it: trimmed, ASCII letters lower-cased (mana-auth stores addresses
    lower-cased), nothing locale-dependent. The database does the same with translate()."""
    folded = (email or "").strip().translate(_ASCII_FOLD)
    return folded or None
