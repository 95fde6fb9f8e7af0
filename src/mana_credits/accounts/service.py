"""Account deletion (mana-auth calls it when a user deletes their account).

Bookkeeping-safe: amounts, balances and the ledger's arithmetic stay, so `audit` stays clean; what can name
or describe the person goes. Open holds are released, sync stops, gifts the user sent stay redeemable by
their recipients (anonymous sender), gifts to the user's address stay as they are (they expire and refund
their sender as usual). Idempotent: a second call changes nothing and reports 0.
"""

from __future__ import annotations

from mana_credits import ledger
from mana_credits.accounts import repository
from mana_credits.accounts.schemas import Erased
from mana_credits.db.pool import Conn


async def erase(conn: Conn, user_id: str) -> Erased:
    """Run in one transaction: all of it or nothing."""
    await repository.lock_account(conn, user_id)
    count = 0
    held = await repository.open_holds(conn, user_id)
    if held:
        await ledger.release_hold(conn, user_id, held)
        count += 1
    count += await repository.stop_sync(conn, user_id)
    count += await repository.scrub_gifts(conn, user_id)
    count += await ledger.erase_personal_data(
        conn, user_id, gift_rows_of_others=await repository.gift_transaction_ids(conn, user_id)
    )
    count += await repository.scrub_holds(conn, user_id)
    count += await repository.scrub_payments_and_mail(conn, user_id)
    count += await repository.scrub_answers(conn, user_id)
    return Erased(success=True, deleted_count=count)
