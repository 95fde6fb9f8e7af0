"""The ledger: the only code that moves credits.

The invariant, for every account at every commit (`audit` checks it; the statements keep it):

    balance + reserved = Σ amount of its completed ledger rows
    total_earned       = Σ positive amounts except refunds and expiries, minus reversals
    total_spent        = −Σ negative amounts except reversals, minus refunds and expiries
    reserved           = Σ its open holds
    each ledger row:     balance_before + amount = balance_after
    per user and app:    fractions charged = whole credits billed (their rollup rows) + accrued (accrual.py)

Every balance change writes its ledger row in the same statement or transaction.

The debit rule is written once (rule.py) and every debit path composes it: single, settle, many, group
commit (the words: ARCHITECTURE.md).

Layout and words: ARCHITECTURE.md.
"""

from mana_credits.ledger.erasure import erase_personal_data
from mana_credits.ledger.many import DebitItem, debit_many
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
