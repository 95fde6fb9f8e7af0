"""Shared, domain-free building blocks: errors, idempotency, pagination, clock, jobs."""
