"""Database access: the asyncpg pool, the embedded PostgreSQL and the Alembic migrations."""
