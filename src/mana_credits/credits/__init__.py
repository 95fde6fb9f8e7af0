"""Credits: balance, use, history, refunds, grants, init, usage charts and holds (rules of holds: holds.py).

Layout and words: ARCHITECTURE.md.
"""
