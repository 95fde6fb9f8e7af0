"""The cloud-sync credit subscription: activation, renewals exactly once, pause, gifted sync.

Layout and words: ARCHITECTURE.md.
"""
