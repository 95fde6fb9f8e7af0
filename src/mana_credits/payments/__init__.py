"""Credit packages, purchases through Stripe, and the Stripe webhook intake."""
