"""Advisory locks, all keyed the same way: a 64-bit hash of a namespaced text key.

One scheme everywhere (`hashtextextended(key, 0)`), so two kinds of lock never collide by mixing a 32-bit
and a 64-bit hash; the namespace prefix keeps kinds apart.
"""

from __future__ import annotations

from mana_credits.db.pool import Conn

MIGRATE = "mana-credits:migrate"
AUDIT = "mana-credits:audit"
STRIPE_RECONCILE = "mana-credits:stripe-reconcile"


def key_sql(param: str) -> str:
    """The lock key of text `param` (a placeholder like `$1`)."""
    return f"hashtextextended({param}, 0)"


async def xact_lock(conn: Conn, kind: str, key: str) -> None:
    """Wait for the lock on `kind:key`; it is released when the transaction ends."""
    await conn.execute(f"SELECT pg_advisory_xact_lock({key_sql('$1')})", f"{kind}:{key}")


async def session_lock(conn: Conn, key: str) -> None:
    """Wait for the lock on `key`; it is held until unlocked or the connection closes."""
    await conn.execute(f"SELECT pg_advisory_lock({key_sql('$1')})", key)


async def session_try_lock(conn: Conn, key: str) -> bool:
    """Take the lock on `key` if free (held until unlocked or the connection closes); False if taken."""
    return bool(await conn.fetchval(f"SELECT pg_try_advisory_lock({key_sql('$1')})", key))


async def session_unlock(conn: Conn, key: str) -> None:
    await conn.execute(f"SELECT pg_advisory_unlock({key_sql('$1')})", key)
