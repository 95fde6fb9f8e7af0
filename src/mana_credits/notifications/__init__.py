"""The notification outbox and its delivery to mana-notify.

Layout, the same in every domain: endpoints.py HTTP only (routes, status, headers); service.py the rules;
repository.py the SQL (only ledger/ moves credits); schemas.py wire types (bodies, answers); errors.py the
domain's errors (shared ones: kit/errors.py); cli.py commands; tasks.py jobs; a big topic: its own module.
"""
