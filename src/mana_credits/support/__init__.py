"""Operator commands for supporting one user: look them up, grant credits, export the ledger.

Layout and words: ARCHITECTURE.md.
"""
