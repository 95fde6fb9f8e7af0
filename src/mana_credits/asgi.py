"""The ASGI entry point for granian workers: settings come from the environment the CLI prepared."""

from mana_credits.app import create_app
from mana_credits.config import Settings
from mana_credits.kit import logs
from mana_credits.kit.deadline import body_deadline
from mana_credits.kit.proxies import behind_proxies

settings = Settings()
logs.configure(json=not settings.is_development)
# Behind Traefik the connection comes from the proxy: take the client address from X-Forwarded-For.
# Outermost, the body's deadline (granian has none): a body that never arrives is a 408, not a held slot.
app = body_deadline(behind_proxies(create_app(settings), settings.TRUSTED_PROXIES))
