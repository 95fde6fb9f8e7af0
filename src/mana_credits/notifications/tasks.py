"""Background jobs of this domain (see kit.jobs): deliver the outbox to mana-notify."""

from __future__ import annotations

from mana_credits.context import AppContext
from mana_credits.kit.jobs import Job
from mana_credits.notifications.service import Notifier

DELIVERY_INTERVAL_SECONDS = 30.0


def notifier(ctx: AppContext) -> Notifier:
    return Notifier(
        pool=ctx.pool,
        http=ctx.http,
        clock=ctx.clock,
        notify_url=ctx.settings.MANA_NOTIFY_URL,
        service_key=ctx.settings.MANA_SERVICE_KEY,
    )


def jobs(ctx: AppContext) -> list[Job]:
    return [Job("notification-outbox", DELIVERY_INTERVAL_SECONDS, notifier(ctx).deliver_due)]
