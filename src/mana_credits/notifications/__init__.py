"""The notification outbox and its delivery to mana-notify.

Layout and words: ARCHITECTURE.md.
"""
