from datetime import UTC, datetime, timedelta, timezone

from mana_credits.sync_billing.periods import SyncInterval, add_months, first_period, renewal_period


def at(year: int, month: int, day: int, hour: int = 10) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def test_month_end_clamp_keeps_the_anchor_day() -> None:
    dates = [at(2024, 1, 31)]
    for _ in range(12):
        dates.append(add_months(dates[-1], 1, 31))
    assert [d.date().isoformat() for d in dates] == [
        "2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31", "2024-06-30",
        "2024-07-31", "2024-08-31", "2024-09-30", "2024-10-31", "2024-11-30", "2024-12-31", "2025-01-31",
    ]  # fmt: skip
    assert all(d.time() == dates[0].time() for d in dates)


def test_non_leap_february_and_day_30_anchor() -> None:
    assert add_months(at(2023, 1, 31), 1, 31) == at(2023, 2, 28)
    assert add_months(at(2023, 2, 28), 1, 30) == at(2023, 3, 30)
    assert add_months(at(2100, 1, 29), 1, 29) == at(2100, 2, 28)  # 2100 is not a leap year
    assert add_months(at(2000, 1, 29), 1, 29) == at(2000, 2, 29)  # 2000 is


def test_yearly_from_leap_day_returns_to_it_in_the_next_leap_year() -> None:
    first = add_months(at(2024, 2, 29), 12, 29)
    assert first == at(2025, 2, 28)
    assert add_months(first, 12, 29) == at(2026, 2, 28)
    assert add_months(at(2027, 2, 28), 12, 29) == at(2028, 2, 29)


def test_quarterly_across_the_year_end() -> None:
    assert add_months(at(2024, 11, 30), 3, 30) == at(2025, 2, 28)
    assert add_months(at(2025, 2, 28), 3, 30) == at(2025, 5, 30)
    assert add_months(at(2024, 8, 31), 3, 31) == at(2024, 11, 30)


def test_results_are_utc_whatever_the_input_zone() -> None:
    berlin = timezone(timedelta(hours=1))
    # 00:30 on Feb 1 in Berlin is still Jan 31 in UTC.
    moment = datetime(2024, 2, 1, 0, 30, tzinfo=berlin)
    end, anchor = first_period(moment, SyncInterval.MONTHLY)
    assert anchor == 31
    assert end == datetime(2024, 2, 29, 23, 30, tzinfo=UTC)
    assert end.tzinfo == UTC


def test_renewal_on_time_starts_at_the_due_date() -> None:
    start, end, anchor = renewal_period(at(2024, 2, 29), SyncInterval.MONTHLY, 31, now=at(2024, 2, 29, 11))
    assert (start, end, anchor) == (at(2024, 2, 29), at(2024, 3, 31), 31)


def test_renewal_after_an_outage_of_several_periods_reanchors_from_now() -> None:
    now = at(2024, 5, 20, 8)
    start, end, anchor = renewal_period(at(2024, 1, 15), SyncInterval.MONTHLY, 15, now=now)
    assert (start, end, anchor) == (now, at(2024, 6, 20, 8), 20)


def test_renewal_late_within_the_period_keeps_the_schedule() -> None:
    start, end, anchor = renewal_period(at(2024, 1, 15), SyncInterval.MONTHLY, 15, now=at(2024, 2, 10))
    assert (start, end, anchor) == (at(2024, 1, 15), at(2024, 2, 15), 15)


def test_legacy_row_without_anchor_uses_the_due_day() -> None:
    _, end, anchor = renewal_period(at(2024, 3, 30), SyncInterval.MONTHLY, None, now=at(2024, 3, 30, 11))
    assert (end, anchor) == (at(2024, 4, 30), 30)
