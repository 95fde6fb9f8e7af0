from __future__ import annotations

from collections.abc import Iterator

import pytest

from mana_credits.context import AppContext
from mana_credits.notifications.service import Notifier
from tests.notifications.notify_stub import NotifyStub
from tests.support import SERVICE_KEY


@pytest.fixture(scope="session")
def notify_stub() -> Iterator[NotifyStub]:
    stub = NotifyStub()
    yield stub
    stub.close()


@pytest.fixture
def notifier(ctx: AppContext, notify_stub: NotifyStub) -> Iterator[Notifier]:
    notify_stub.up = True
    yield Notifier(
        pool=ctx.pool, http=ctx.http, clock=ctx.clock, notify_url=notify_stub.url, service_key=SERVICE_KEY
    )
    notify_stub.up = True
