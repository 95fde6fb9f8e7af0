"""The ledger: the only code that moves credits. Every balance change writes one immutable transaction row
in the same statement or transaction, so `balance + reserved = Σ amount` always holds (`audit` checks it).

Layout, the same in every domain: endpoints.py HTTP only (routes, status, headers); service.py the rules;
repository.py the SQL (only ledger/ moves credits); schemas.py wire types (bodies, answers); errors.py the
domain's errors (shared ones: kit/errors.py); cli.py commands; tasks.py jobs; a big topic: its own module.
"""

from mana_credits.ledger.batch import DebitItem, debit_many
from mana_credits.ledger.erasure import erase_personal_data
from mana_credits.ledger.repository import (
    account_summary,
    credit,
    debit,
    get_balance,
    get_balances,
    hold,
    init_balance,
    release_hold,
    settle_hold,
    take_back,
)
from mana_credits.ledger.schemas import AccountSummary, Balance, BalanceRow, Transaction, TxType

__all__ = [
    "AccountSummary",
    "Balance",
    "BalanceRow",
    "DebitItem",
    "Transaction",
    "TxType",
    "account_summary",
    "credit",
    "debit",
    "debit_many",
    "erase_personal_data",
    "get_balance",
    "get_balances",
    "hold",
    "init_balance",
    "release_hold",
    "settle_hold",
    "take_back",
]
