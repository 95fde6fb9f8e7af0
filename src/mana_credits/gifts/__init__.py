"""Gift codes: create, look up, redeem exactly once by the right person, cancel, expire.

Layout and words: ARCHITECTURE.md.
"""
