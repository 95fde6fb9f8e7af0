"""mana-credits: the credit and billing service of the Mana app ecosystem.

Domains (each laid out as its package docstring says, the same everywhere): accounts, credits, gifts,
ledger, notifications, payments, support, sync_billing. Shared, domain-free: auth, db, kit, web, and
client (the package other backends import).
"""
