"""The outbox reaches mana-notify exactly once, survives outages and restarts, and carries a recipient."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg

from mana_credits.kit.clock import Clock
from mana_credits.notifications import repository as outbox
from mana_credits.notifications.service import Notifier, backoff, sync_paused
from tests.notifications.notify_stub import NotifyStub
from tests.support import SERVICE_KEY, Actor, Api
from tests.sync_billing.helpers import activate, run_renewals, status


async def _pause(api: Api, clock: Clock, db: asyncpg.Connection) -> tuple[Actor, str]:
    """A user whose renewal found too few credits; returns the queued email's external id."""
    user = api.actor()
    await api.fund(user.id, 30)
    clock.set(datetime(2025, 9, 10, 9, tzinfo=UTC))
    assert (await activate(api, user)).status_code == 200
    clock.set(datetime(2025, 10, 10, 9, 30, tzinfo=UTC))
    await run_renewals(api)
    assert (await status(api, user))["pausedAt"] is not None
    external_id = await db.fetchval(
        "SELECT external_id FROM credits.notification_outbox WHERE payload->>'userId' = $1", user.id
    )
    assert external_id is not None
    return user, external_id


async def _row(db: asyncpg.Connection, external_id: str) -> asyncpg.Record:
    row = await db.fetchrow(
        "SELECT attempts, delivered_at, next_attempt_at, last_error FROM credits.notification_outbox "
        "WHERE external_id = $1",
        external_id,
    )
    assert row is not None
    return row


async def test_pause_email_waits_out_an_outage_and_is_delivered_once(
    api: Api, clock: Clock, db: asyncpg.Connection, notifier: Notifier, notify_stub: NotifyStub
) -> None:
    user, external_id = await _pause(api, clock, db)

    notify_stub.up = False
    down = await notifier.deliver_due()
    assert down.failed >= 1
    row = await _row(db, external_id)
    assert (row["attempts"], row["delivered_at"]) == (1, None)
    assert "503" in row["last_error"]
    assert notify_stub.sent_with(external_id) == []

    notify_stub.up = True
    await notifier.deliver_due()  # still inside the backoff: not tried yet
    assert notify_stub.sent_with(external_id) == []

    clock.advance(backoff(1) + timedelta(seconds=1))
    await notifier.deliver_due()
    await notifier.deliver_due()
    sent = notify_stub.sent_with(external_id)
    assert len(sent) == 1
    body = sent[0].body
    assert body["recipient"] == user.email
    assert (body["channel"], body["appId"], body["userId"], body["subject"]) == (
        "email", "sync", user.id, "Cloud Sync pausiert",
    )  # fmt: skip
    assert body["data"] == {"type": "sync-paused", "resumeUrl": "https://mana.test/settings/sync"}
    assert sent[0].headers["X-Service-Key"] == SERVICE_KEY
    row = await _row(db, external_id)
    assert row["delivered_at"] is not None
    assert row["attempts"] == 2


async def test_unreachable_notify_keeps_the_email_queued_with_growing_backoff(
    api: Api, clock: Clock, db: asyncpg.Connection, notifier: Notifier, notify_stub: NotifyStub
) -> None:
    _, external_id = await _pause(api, clock, db)
    # Nothing listens there: connection refused, not an HTTP error.
    closed = Notifier(
        pool=notifier.pool, http=notifier.http, clock=clock, notify_url="http://127.0.0.1:9", service_key="k"
    )
    await closed.deliver_due()
    first = await _row(db, external_id)
    clock.advance(backoff(1) + timedelta(seconds=1))
    await closed.deliver_due()
    second = await _row(db, external_id)
    assert (first["attempts"], second["attempts"]) == (1, 2)
    assert second["delivered_at"] is None
    assert second["next_attempt_at"] - first["next_attempt_at"] > backoff(1)

    clock.advance(backoff(2) + timedelta(seconds=1))
    await notifier.deliver_due()
    assert len(notify_stub.sent_with(external_id)) == 1


async def test_concurrent_delivery_loops_send_each_message_once(
    clock: Clock, db: asyncpg.Connection, notifier: Notifier, notify_stub: NotifyStub
) -> None:
    now = clock.now()
    ids = [f"concurrent-{index}-{now.timestamp()}" for index in range(30)]
    messages = [
        (key, sync_paused(user_id="u", email="u@example.com", amount=30, resume_url="r", external_id=key))
        for key in ids
    ]
    await outbox.enqueue_many(db, messages, now)
    # The same row queued twice (e.g. a repeated pause) stays one message.
    await outbox.enqueue_many(db, [(ids[0], {"externalId": ids[0]})], now)
    await asyncio.gather(*(notifier.deliver_due(batch=4) for _ in range(3)))
    assert [len(notify_stub.sent_with(external_id)) for external_id in ids] == [1] * 30
    assert notify_stub.sent_with(ids[0])[0].body["recipient"] == "u@example.com"


async def test_mana_notify_down_for_days_loses_and_repeats_nothing(
    api: Api, clock: Clock, db: asyncpg.Connection, notifier: Notifier, notify_stub: NotifyStub
) -> None:
    """An outage is not the message's fault: however long mana-notify is down (unreachable or 5xx), every
    queued mail is tried again, at most an hour apart, and delivered once when it returns."""
    queued = [await _pause(api, clock, db) for _ in range(3)]
    closed = Notifier(
        pool=notifier.pool, http=notifier.http, clock=clock, notify_url="http://127.0.0.1:9", service_key="k"
    )
    notify_stub.up = False
    for hour in range(72):  # three days of delivery rounds, unreachable and answering 503 by turns
        await (closed if hour % 2 else notifier).deliver_due()
        clock.advance(timedelta(hours=1, seconds=1))
    for _, external_id in queued:
        row = await _row(db, external_id)
        assert row["delivered_at"] is None and row["next_attempt_at"] - clock.now() <= timedelta(hours=1)
    notify_stub.up = True
    await asyncio.gather(notifier.deliver_due(), notifier.deliver_due())
    clock.advance(timedelta(hours=2))
    await notifier.deliver_due()
    assert [len(notify_stub.sent_with(external_id)) for _, external_id in queued] == [1, 1, 1]


async def test_a_message_refused_for_a_day_is_parked_not_retried_forever(
    api: Api, clock: Clock, db: asyncpg.Connection, notifier: Notifier, notify_stub: NotifyStub
) -> None:
    from mana_credits.notifications.service import MAX_ATTEMPTS

    _, external_id = await _pause(api, clock, db)
    # mana-notify refuses this very message (a 4xx), and has done so all but one of its tries.
    notify_stub.reject[external_id] = (422, b'{"error": "recipient missing"}')
    await db.execute(
        "UPDATE credits.notification_outbox SET attempts = $2 WHERE external_id = $1",
        external_id,
        MAX_ATTEMPTS - 1,
    )
    await notifier.deliver_due()
    parked = await _row(db, external_id)
    assert parked["attempts"] == MAX_ATTEMPTS and parked["delivered_at"] is None
    assert "422" in parked["last_error"]
    clock.advance(timedelta(days=30))
    await notifier.deliver_due()
    assert (await _row(db, external_id))["attempts"] == MAX_ATTEMPTS


async def test_one_bad_answer_does_not_undo_or_repeat_the_others(
    clock: Clock, db: asyncpg.Connection, notifier: Notifier, notify_stub: NotifyStub
) -> None:
    now = clock.now()
    good, bad = f"good-{now.timestamp()}", f"bad-{now.timestamp()}"
    messages = [
        (key, sync_paused(user_id="u", email="u@example.com", amount=30, resume_url="r", external_id=key))
        for key in (good, bad)
    ]
    await outbox.enqueue_many(db, messages, now)
    # An error text PostgreSQL cannot store as it is (NUL).
    notify_stub.reject[bad] = (400, b'{"error": "bad recipient \\u0000 \x00"}')
    try:
        for _ in range(3):
            await notifier.deliver_due()
            clock.advance(timedelta(seconds=1))
    finally:
        notify_stub.reject.pop(bad)
    assert len(notify_stub.sent_with(good)) == 1
    assert (await _row(db, good))["delivered_at"] is not None
    failed = await _row(db, bad)
    assert failed["delivered_at"] is None and failed["attempts"] == 1
    assert failed["last_error"].startswith("HTTP 400")
