"""The package other Python backends import: a typed credits client and the sync gate.

Depends only on httpx and the standard library (no server code is imported).
"""

from mana_credits.client.credits import Balance, Charge, CreditsClient, Grant, Hold, SyncStatus
from mana_credits.client.errors import (
    AuthError,
    CreditsError,
    CreditsUnavailable,
    InsufficientCredits,
    SyncGateConfigError,
)
from mana_credits.client.sync_gate import SYNC_INACTIVE_BODY, SyncBillingChecker, SyncGateMiddleware

__all__ = [
    "SYNC_INACTIVE_BODY",
    "AuthError",
    "Balance",
    "Charge",
    "CreditsClient",
    "CreditsError",
    "CreditsUnavailable",
    "Grant",
    "Hold",
    "InsufficientCredits",
    "SyncBillingChecker",
    "SyncGateConfigError",
    "SyncGateMiddleware",
    "SyncStatus",
]
