"""The ledger's own errors (shared ones: kit/errors.py)."""

from __future__ import annotations

from mana_credits.kit.errors import CreditsError


class OutcomeUnknown(CreditsError):
    status = 503
    code = "outcome_unknown"
    message = (
        "The connection to the database was lost while this debit was being committed, and whether it was "
        "applied cannot be told now. Do not retry it without an Idempotency-Key: look at the transaction "
        "history first"
    )
