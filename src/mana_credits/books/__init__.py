"""The books: the monthly statement of the credits owed to users, reconciled against the ledger and the
balances (the Stripe side of the books is payments/reconcile.py).

Layout and words: ARCHITECTURE.md.
"""
