"""The ASGI entry point for granian workers: settings come from the environment the CLI prepared."""

from mana_credits.app import create_app

app = create_app()
