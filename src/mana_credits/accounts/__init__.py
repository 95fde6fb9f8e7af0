"""Accounts: what happens to a user's data when mana-auth deletes the account (bookkeeping-safe erasure).

endpoints.py (the route), service.py (the order of steps), repository.py (the SQL outside the ledger).
"""
