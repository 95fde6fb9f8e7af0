"""The injected clock moves only when told to, and by exactly what it is told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mana_credits.kit.clock import Clock


def test_fresh_clock_is_wall_time() -> None:
    before = datetime.now(UTC)
    now = Clock().now()
    assert before <= now <= datetime.now(UTC) and now.tzinfo is UTC


def test_advance_adds_up() -> None:
    clock = Clock()
    clock.advance(timedelta(days=1))
    clock.advance(timedelta(hours=2))
    assert clock.offset == timedelta(days=1, hours=2)
    assert clock.now() - datetime.now(UTC) > timedelta(days=1, hours=1)


def test_set_moves_to_a_moment_and_time_keeps_running_from_there() -> None:
    clock = Clock()
    moment = datetime(2030, 6, 1, tzinfo=UTC)
    clock.set(moment)
    first = clock.now()
    assert moment <= first < moment + timedelta(minutes=1)
    assert clock.now() >= first
