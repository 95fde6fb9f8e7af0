"""The ASGI entry point for granian workers: settings come from the environment the CLI prepared."""

from mana_credits.app import create_app
from mana_credits.config import Settings
from mana_credits.kit import logs

settings = Settings()
logs.configure(json=not settings.is_development)
app = create_app(settings)
