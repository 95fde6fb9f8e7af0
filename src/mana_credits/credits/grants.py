"""A grant happens once per (user, reference): the internal grant route and `mana-credits grant` share it."""

from __future__ import annotations

from typing import Any

from mana_credits import ledger
from mana_credits.db.pool import Conn
from mana_credits.kit import idempotency
from mana_credits.ledger.models import TxType


async def grant_once(
    conn: Conn, *, user_id: str, amount: int, reason: str, reference_id: str, app_id: str, description: str
) -> tuple[dict[str, Any], bool]:
    """Credit `amount` unless this reference was granted before: (answer body, replayed).

    The caller owns the transaction."""
    scope = f"grant:{user_id}"
    stored = await idempotency.claim(conn, scope, reference_id, "grant")
    if stored is not None:
        balance = await ledger.get_balance(conn, user_id, create=False)
        return {**stored[1], "alreadyGranted": True, "newBalance": balance.balance}, True
    entry = await ledger.credit(
        conn, user_id, amount, type=TxType.GRANT, app_id=app_id, description=description,
        metadata={"referenceId": reference_id, "reason": reason},
    )  # fmt: skip
    body = {
        "ok": True,
        "alreadyGranted": False,
        "newBalance": entry.balance,
        "transactionId": str(entry.transaction.id),
    }
    await idempotency.remember(conn, scope, reference_id, 200, body)
    return body, False
