"""The ledger: the only code that moves credits. Every balance change writes one immutable transaction row
in the same statement or transaction, so `balance + reserved = Σ amount` always holds (`audit` checks it).
"""

from mana_credits.ledger.batch import DebitItem, debit_many
from mana_credits.ledger.models import Balance, Transaction, TxType
from mana_credits.ledger.repository import (
    credit,
    debit,
    get_balance,
    hold,
    release_hold,
    settle_hold,
    take_back,
)

__all__ = [
    "Balance",
    "DebitItem",
    "Transaction",
    "TxType",
    "credit",
    "debit",
    "debit_many",
    "get_balance",
    "hold",
    "release_hold",
    "settle_hold",
    "take_back",
]
