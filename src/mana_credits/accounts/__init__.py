"""Accounts: what happens to a user's data when mana-auth deletes the account (bookkeeping-safe erasure).

Layout and words: ARCHITECTURE.md.
"""
