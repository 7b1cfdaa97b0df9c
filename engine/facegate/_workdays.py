"""Working-day arithmetic for deadlines such as "within 30 working days" (30个工作日内).

The calendar is data the *pack* supplies (its public holidays, its adjusted working days — the
Saturdays and Sundays worked in exchange for a holiday bridge — and the years that data covers),
so legal teams review it next to the provision that counts in working days.  The function is
pure and registered through ``register_cel_functions`` like any plugin's.

A date outside the covered years is an error, never a guess: counting only weekends in a year
whose holidays nobody entered would move a legal deadline silently.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence


class CalendarError(ValueError):
    """A date the calendar cannot count: malformed, or in a year it does not cover."""


def _day(value: object, what: str) -> _dt.date:
    if not isinstance(value, str) or len(value) < 10:
        raise CalendarError(f"{what} `{value}` is not an ISO date")
    try:
        return _dt.date.fromisoformat(value[:10])
    except ValueError as exc:
        raise CalendarError(f"{what} `{value}` is not an ISO date") from exc


def working_days_between(start: str, end: str, holidays: Sequence[str], workdays: Sequence[str],
                         years: Sequence[int]) -> int:
    """Working days after ``start`` up to and including ``end`` (0 when ``end <= start``).

    "Within 30 working days from the day X" is met while ``working_days_between(X, today) <= 30``:
    the day X itself is not counted (the usual reading of 自…之日起…个工作日内; a pack that reads it
    otherwise says so next to its rule).  Dates may carry a time (``2025-06-03T09:00:00Z``); only
    the calendar date counts.  Every day counted must lie in one of ``years``.
    """
    first, last = _day(start, "start"), _day(end, "end")
    covered = {int(y) for y in years}
    off = {_day(d, "holiday") for d in holidays}
    on = {_day(d, "adjusted working day") for d in workdays}
    if last <= first:
        return 0
    for year in range((first + _dt.timedelta(days=1)).year, last.year + 1):
        if year not in covered:
            raise CalendarError(f"the working-day calendar does not cover {year}")
    count = 0
    day = first + _dt.timedelta(days=1)
    one = _dt.timedelta(days=1)
    while day <= last:
        if day in on or (day.weekday() < 5 and day not in off):
            count += 1
        day += one
    return count
