"""Who is calling: users (JWT from mana-auth), other backends (service keys), admins."""
