"""The ledger: the only code that moves credits.

The invariant, for every account at every commit (`audit` checks it; the statements keep it):

    balance + reserved = Σ amount of its completed ledger rows
    total_earned       = Σ positive amounts except refunds and expiries, minus reversals
    total_spent        = −Σ negative amounts except reversals, minus refunds and expiries
    reserved           = Σ its open holds
    each ledger row:     balance_before + amount = balance_after

Every balance change writes its ledger row in the same statement or transaction.

The debit rule (rule.py, once): a usage debit moves the balance into `total_spent`, writes one ledger row
and, for usage, one usage row. Every path composes those three pieces; the paths differ only in how they
decide which debits are covered. The words:

- single debit: one debit, one statement (`debit`), the way of keyed debits, gifts and late hold commits.
- settle: a hold's commit (`settle_hold`): the used part is a debit, the rest goes back to the balance.
- many: a list the caller made, one debit per account, in one statement (`debit_many`, renewal runs).
- group commit: keyless usage debits of any accounts that arrive while one statement is in flight go
  together in the next (group.py); decided in arrival order, each with its own answer.
- batch: the items one statement carries (a group commit's debits, a sweep's rows, an audit's users).
- batcher: kit.batching.Batcher, which forms batches from concurrent callers (the group commit, balance
  reads).

Layout, the same in every domain: endpoints.py HTTP only (routes, status, headers); service.py the rules;
repository.py the SQL (only ledger/ moves credits); schemas.py wire types (bodies, answers); errors.py the
domain's errors (shared ones: kit/errors.py); cli.py commands; tasks.py jobs; a big topic: its own module.
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
