"""workingDaysBetween: the built-in working-day calendar function packs count deadlines with."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from facegate._plugins import builtin_functions
from facegate._workdays import CalendarError, working_days_between

# A two-week toy calendar: Wed 2025-10-01 … Wed 2025-10-08 off, Sat 2025-10-11 worked in exchange.
HOLIDAYS = [f"2025-10-0{d}" for d in range(1, 9)]
WORKDAYS = ["2025-09-28", "2025-10-11"]


def test_plain_weeks_count_monday_to_friday_and_not_the_start_day():
    # Mon 2025-06-02 → Mon 2025-06-09: Tue … Fri and Mon = 5 working days.
    assert working_days_between("2025-06-02", "2025-06-09", [], [], [2025]) == 5
    assert working_days_between("2025-06-06", "2025-06-09", [], [], [2025]) == 1  # Fri → Mon


def test_holidays_are_skipped_and_adjusted_weekend_days_count():
    # Fri 2025-09-26 → Sun 2025-10-12: Sun 09-28 (worked), Mon 09-29, Tue 09-30, Thu 10-09, Fri 10-10, Sat 10-11 (worked).
    assert working_days_between("2025-09-26", "2025-10-12", HOLIDAYS, WORKDAYS, [2025]) == 6
    assert working_days_between("2025-09-26", "2025-10-12", [], [], [2025]) == 10  # Mon 29 … Fri 3, Mon 6 … Fri 10


def test_end_on_or_before_start_is_zero():
    assert working_days_between("2025-06-09", "2025-06-09", [], [], [2025]) == 0
    assert working_days_between("2025-06-09", "2025-06-01", [], [], [2025]) == 0


def test_times_are_ignored_only_the_date_counts():
    assert working_days_between("2025-06-02T23:59:59+08:00", "2025-06-03T00:00:01Z", [], [], [2025]) == 1


def test_a_year_the_calendar_does_not_cover_is_an_error_not_a_guess():
    with pytest.raises(CalendarError, match="does not cover 2027"):
        working_days_between("2026-12-30", "2027-01-04", [], [], [2025, 2026])
    # the start day itself is not counted, so a start on 31 December of an uncovered year is fine
    assert working_days_between("2024-12-31", "2025-01-02", [], [], [2025]) == 2


@pytest.mark.parametrize("bad", ["", "2025-13-01", "yesterday", "2025/06/01"])
def test_malformed_dates_are_errors(bad):
    with pytest.raises(CalendarError, match="not an ISO date"):
        working_days_between(bad, "2025-06-09", [], [], [2025])
    with pytest.raises(CalendarError, match="not an ISO date"):
        working_days_between("2025-06-02", "2025-06-09", [bad], [], [2025])


@given(st.dates(dt.date(2025, 1, 1), dt.date(2026, 12, 31)), st.integers(0, 120))
def test_matches_a_day_by_day_count(start, span):
    end = min(start + dt.timedelta(days=span), dt.date(2026, 12, 31))
    expected = sum(
        1 for i in range(1, (end - start).days + 1)
        if (d := start + dt.timedelta(days=i)).isoformat() in WORKDAYS
        or (d.weekday() < 5 and d.isoformat() not in HOLIDAYS)
    )
    assert working_days_between(start.isoformat(), end.isoformat(), HOLIDAYS, WORKDAYS, [2025, 2026]) == expected


def test_registered_through_the_cel_function_hook_with_its_types():
    fn = builtin_functions()["workingDaysBetween"]
    assert fn.plugin == "facegate.builtins"
    assert fn.arg_types == ("string", "string", "list", "list", "list") and fn.result_type == "int"
