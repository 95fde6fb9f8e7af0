"""Transaction-scoped advisory locks, all keyed the same way: a 64-bit hash of a namespaced text key.

One scheme everywhere (`hashtextextended(key, 0)`), so two kinds of lock never collide by mixing a 32-bit
and a 64-bit hash; the namespace prefix keeps kinds apart.
"""

from __future__ import annotations

from mana_credits.db.pool import Conn

MIGRATE = "mana-credits:migrate"


def xact_lock_sql(param: str) -> str:
    """The statement that waits for the lock on text key `param` (a placeholder like `$1` or `:key`)."""
    return f"SELECT pg_advisory_xact_lock(hashtextextended({param}, 0))"


async def xact_lock(conn: Conn, kind: str, key: str) -> None:
    """Wait for the lock on `kind:key`; it is released when the transaction ends."""
    await conn.execute(xact_lock_sql("$1"), f"{kind}:{key}")
