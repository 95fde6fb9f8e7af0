"""Background jobs of this domain (see kit.jobs)."""

from __future__ import annotations

from mana_credits.context import AppContext
from mana_credits.kit.jobs import Job


def jobs(ctx: AppContext) -> list[Job]:
    return []
