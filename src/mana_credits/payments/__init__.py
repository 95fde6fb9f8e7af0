"""Credit packages, purchases through Stripe, and the Stripe webhook intake (webhooks.py).

Layout and words: ARCHITECTURE.md.
"""
