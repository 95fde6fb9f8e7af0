"""The service's own web pages: sign-in, credits dashboard, Cloud Sync, gifts, the public gift page."""

from mana_credits.web.pages import routes

__all__ = ["routes"]
