"""Checkout return URLs: real URLs on the web app's own origins, so a payment never ends on another site."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from mana_credits.config import Settings
from mana_credits.kit.errors import ValidationFailed
from mana_credits.kit.validation import URL_FORBIDDEN

_HOST_CHARACTERS = set("abcdefghijklmnopqrstuvwxyz0123456789-")
_FORBIDDEN = re.compile(f"[{URL_FORBIDDEN}]")


def origin(url: str) -> str | None:
    """`scheme://host[:port]`, lower-cased, or None when `url` is not an http(s) URL with a plain host."""
    if _FORBIDDEN.search(url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a bad port or bracketed host
        return None
    host = parts.hostname
    if parts.scheme.lower() not in ("http", "https") or not host or parts.username or parts.password:
        return None
    if not all(label and set(label) <= _HOST_CHARACTERS for label in host.split(".")):
        return None
    default = {"http": 80, "https": 443}[parts.scheme.lower()]
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port and port != default else "")


def allowed_origins(settings: Settings) -> set[str]:
    """The web app, its CORS origins, and this service itself (its own pages under /app buy too)."""
    found = (origin(url) for url in [settings.WEB_APP_URL, settings.BASE_URL, *settings.cors_origins])
    return {item for item in found if item}


def check(url: str | None, field: str, allowed: set[str]) -> None:
    """Raise a 400 naming `field` unless `url` is absent or on one of the `allowed` origins."""
    if url is None:
        return
    found = origin(url)
    if found is None:
        message = f"{field} is not a valid http(s) URL"
    elif found not in allowed:
        message = f"{field} must point at the web app ({', '.join(sorted(allowed))})"
    else:
        return
    raise ValidationFailed(message, details={"fields": [{"field": field, "message": message}]})
