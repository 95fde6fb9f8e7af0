"""The ASGI entry point for granian workers: settings come from the environment the CLI prepared."""

from granian.utils.proxies import wrap_asgi_with_proxy_headers

from mana_credits.app import create_app
from mana_credits.config import Settings
from mana_credits.kit import logs

settings = Settings()
logs.configure(json=not settings.is_development)
# Behind Traefik the connection comes from the proxy: take the client address from X-Forwarded-For.
app = wrap_asgi_with_proxy_headers(create_app(settings), settings.TRUSTED_PROXIES)
