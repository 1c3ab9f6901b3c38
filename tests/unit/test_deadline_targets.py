"""A deadline's due and warning instants with no pause are remembered per start: each
change of a case asks for them again. The remembered values are those of the very instant
the deadline started, also in an hour a zone's clock repeats."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from core.cases.deadlines import _unpaused
from core.spec.definitions import CalendarDef
from core.time.calendars import WorkingCalendar
from core.time.durations import Elapsed, WorkTime

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def test_two_starts_at_the_same_wall_time_of_a_repeated_hour_keep_their_own_due() -> None:
    """01:30 on 1 November 2026 happens twice in New York (EDT, then EST): a deadline that
    started at the first and one that started at the second are due an hour apart, though
    the two starts compare equal in Python (same zone, same wall time)."""
    cal = WorkingCalendar(None, "America/New_York")
    first = dt.datetime(2026, 11, 1, 1, 30, tzinfo=NEW_YORK)
    second = first.replace(fold=1)
    assert first == second and first.astimezone(dt.UTC) != second.astimezone(dt.UTC)
    target = Elapsed(dt.timedelta(hours=4))
    for start in (first, second, first, second):
        due, budget, warn_budget, warn_at = _unpaused(target, start, cal, "75%")
        assert due.astimezone(dt.UTC) == start.astimezone(dt.UTC) + dt.timedelta(hours=4)
        assert budget == dt.timedelta(hours=4) and warn_budget == dt.timedelta(hours=3)
        assert warn_at is not None
        assert warn_at.astimezone(dt.UTC) == start.astimezone(dt.UTC) + dt.timedelta(hours=3)


def test_a_new_calendar_is_asked_again() -> None:
    """A company's changed calendar is a new calendar: the deadline follows it."""
    start = dt.datetime(2026, 12, 4, 9, 0, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai"))
    target = WorkTime(dt.timedelta(hours=8))
    plain = WorkingCalendar(None, "Asia/Shanghai")
    due_plain = _unpaused(target, start, plain, None)[0]
    short = WorkingCalendar(CalendarDef(working_hours=("09:00-13:00",)), "Asia/Shanghai")
    due_short = _unpaused(target, start, short, None)[0]
    assert due_plain == plain.add_work_time(start, dt.timedelta(hours=8))
    assert due_short == short.add_work_time(start, dt.timedelta(hours=8))
    assert due_short > due_plain
