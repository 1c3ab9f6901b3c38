"""Working-time arithmetic against a minute-by-minute reference on random calendars.

Each example draws a small calendar (random working-hours periods, weekend, company
holidays and extra working days over a 60-day window, a zone with or without daylight
saving, China's package calendars or none) and marks every minute of the window working or
not by looking at its local time — no intervals, no cleverness. ``add_work_time``,
``work_time_between``, ``add_workdays`` and ``is_workday`` must agree with that marking.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import zoneinfo
from dataclasses import dataclass

import chinese_calendar
import holidays
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.time.calendars import CalendarDef, WorkingCalendar

CN_HOLIDAYS = holidays.China(years=range(2025, 2028))
WINDOW_DAYS = 60
MINUTE = dt.timedelta(minutes=1)
# zones with whole-hour offsets that change on whole UTC hours (true of these), so the
# reference may convert once per UTC hour and mark the 60 minutes inside it
ZONES = ("UTC", "Asia/Shanghai", "Europe/Berlin", "America/New_York")


@dataclass
class Reference:
    calendar: WorkingCalendar
    tz: zoneinfo.ZoneInfo
    first: dt.date
    base: dt.datetime  # UTC, the window's first minute
    prefix: list[int]  # prefix[k] = working minutes in the window's first k minutes
    workday: dict[dt.date, bool]

    @property
    def minutes(self) -> int:
        return len(self.prefix) - 1

    def instant(self, k: int) -> dt.datetime:
        return self.base + k * MINUTE

    def add(self, k: int, work: int) -> int | None:
        """Minute index by which ``work`` minutes have passed since minute ``k``."""
        end = bisect.bisect_left(self.prefix, self.prefix[k] + work, lo=k)
        return end if end <= self.minutes else None

    def between(self, i: int, j: int) -> int:
        return self.prefix[j] - self.prefix[i]


def reference_workday(
    day: dt.date,
    country: str | None,
    weekend: set[int],
    extra_holidays: set[dt.date],
    extra_workdays: set[dt.date],
) -> bool:
    if day in extra_workdays:
        return True
    if day in extra_holidays:
        return False
    if country == "CN":
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:  # a later year: the holidays package's China
            if day in CN_HOLIDAYS:
                return False
            if day in CN_HOLIDAYS.weekend_workdays:
                return True
    return day.weekday() not in weekend


@st.composite
def references(draw: st.DrawFn) -> Reference:
    zone = draw(st.sampled_from(ZONES))
    country = draw(st.sampled_from([None, "CN"]))
    # windows from late 2025 to 2027: China's holidays (2027's from the holidays package), DST
    first = draw(st.dates(dt.date(2025, 9, 1), dt.date(2026, 12, 20)))
    days = [first + dt.timedelta(days=i) for i in range(WINDOW_DAYS)]
    n = draw(st.integers(1, 3))
    cuts = sorted(draw(st.lists(st.integers(0, 1440), min_size=2 * n, max_size=2 * n, unique=True)))
    periods = [(cuts[2 * i], cuts[2 * i + 1]) for i in range(n)]
    # chinesecalendar defines its own weekend (Sat/Sun); with no country any weekend goes
    weekend = {5, 6} if country == "CN" else draw(st.sets(st.integers(0, 6), max_size=6))
    extra_holidays = draw(st.sets(st.sampled_from(days), max_size=12))
    extra_workdays = draw(st.sets(st.sampled_from(days), max_size=8)) - extra_holidays

    definition = CalendarDef(
        country=country,
        working_hours=tuple(
            f"{a // 60:02d}:{a % 60:02d}-{b // 60:02d}:{b % 60:02d}" for a, b in periods
        ),
        weekend=tuple(
            ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][i] for i in sorted(weekend)
        ),
        extra_holidays=sorted(extra_holidays),
        extra_workdays=sorted(extra_workdays),
    )
    calendar = WorkingCalendar(definition, zone)
    tz = zoneinfo.ZoneInfo(zone)

    workday = {
        d: reference_workday(d, country, weekend, extra_holidays, extra_workdays)
        for d in [first - dt.timedelta(days=1), *days, days[-1] + dt.timedelta(days=1)]
    }
    base = dt.datetime.combine(first, dt.time(), tzinfo=tz).astimezone(dt.UTC)
    end = dt.datetime.combine(days[-1] + dt.timedelta(days=1), dt.time(), tzinfo=tz).astimezone(
        dt.UTC
    )
    # minute_mask[m]: minute m of a working day (0 = 00:00) lies in a period
    minute_mask = bytes(any(a <= m < b for a, b in periods) for m in range(1440))
    idle = bytes(60)
    marks = bytearray()
    hour = base
    while hour < end:
        local = hour.astimezone(tz)  # whole-hour offsets: the 60 minutes share one local date
        first_minute = local.hour * 60 + local.minute
        marks += minute_mask[first_minute : first_minute + 60] if workday[local.date()] else idle
        hour += dt.timedelta(hours=1)
    prefix = [0, *itertools.accumulate(marks)]
    return Reference(calendar, tz, first, base, prefix, workday)


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(references(), st.data())
def test_add_work_time_matches_the_reference(ref: Reference, data: st.DataObject) -> None:
    for _ in range(4):
        k = data.draw(st.integers(0, ref.minutes * 2 // 3), label="start minute")
        work = data.draw(st.integers(0, 3000), label="work minutes")
        start = ref.instant(k)
        due = ref.calendar.add_work_time(start, work * MINUTE)
        expected = ref.add(k, work)
        if expected is None:  # not enough working time left in the window
            assert due >= ref.instant(ref.minutes)
        else:
            # compare in UTC: PEP 495 makes an inter-zone == false for an instant in a
            # repeated (fold) hour, e.g. 01:30 on the day New York leaves daylight saving
            assert due.astimezone(dt.UTC) == ref.instant(expected), (start, work)
        assert due.tzinfo == ref.tz


@SETTINGS
@given(references(), st.data())
def test_work_time_between_matches_the_reference(ref: Reference, data: st.DataObject) -> None:
    for _ in range(4):
        i = data.draw(st.integers(0, ref.minutes), label="from minute")
        j = data.draw(st.integers(0, ref.minutes), label="to minute")
        got = ref.calendar.work_time_between(ref.instant(i), ref.instant(j))
        expected = ref.between(min(i, j), max(i, j)) * MINUTE
        assert got == (expected if i <= j else -expected)


@SETTINGS
@given(references(), st.data())
def test_days_and_add_workdays_match_the_reference(ref: Reference, data: st.DataObject) -> None:
    for day, expected in ref.workday.items():
        assert ref.calendar.is_workday(day) == expected, day
    k = data.draw(st.integers(0, ref.minutes - 1), label="start minute")
    n = data.draw(st.integers(0, 10), label="workdays")
    start = ref.instant(k)
    local = start.astimezone(ref.tz)
    day, left = local.date(), n
    while left and day in ref.workday:
        day += dt.timedelta(days=1)
        left -= ref.workday.get(day, False)
    if left or day not in ref.workday:
        return  # beyond the window
    due = ref.calendar.add_workdays(start, n)
    assert due.date() == day
    if n:
        # the same wall-clock time, unless that day's clock skips it
        wall = dt.datetime.combine(day, local.time().replace(fold=0), tzinfo=ref.tz)
        assert due == wall.astimezone(dt.UTC).astimezone(ref.tz)
    else:
        assert due == start


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(ZONES),
    st.lists(st.tuples(st.integers(0, 1439), st.integers(1, 600)), min_size=1, max_size=3),
    # hypothesis takes naive bounds; the zone is attached in the test
    st.datetimes(dt.datetime(2025, 6, 1), dt.datetime(2027, 6, 1)),  # noqa: DTZ001  # see above
    st.sampled_from([None, "CN", "DE"]),
    st.data(),
)
def test_work_time_between_inverts_add_work_time(
    zone: str,
    raw: list[tuple[int, int]],
    naive: dt.datetime,
    country: str | None,
    data: st.DataObject,
) -> None:
    # periods from random (start, length) pairs, overlaps dropped
    periods: list[tuple[int, int]] = []
    for a, length in sorted(raw):
        b = min(a + length, 1440)
        if not periods or a >= periods[-1][1]:
            periods.append((a, b))
    # up to about 15 working days of this calendar's working time, to the microsecond
    daily = sum(b - a for a, b in periods) * MINUTE
    work = data.draw(st.timedeltas(dt.timedelta(0), 15 * daily), label="work")
    hours = tuple(f"{a // 60:02d}:{a % 60:02d}-{b // 60:02d}:{b % 60:02d}" for a, b in periods)
    calendar = WorkingCalendar(CalendarDef(country=country, working_hours=hours), zone)
    start = naive.replace(
        tzinfo=zoneinfo.ZoneInfo(zone)
    )  # any instant, seconds and microseconds too
    due = calendar.add_work_time(start, work)
    assert due >= start
    assert calendar.work_time_between(start, due) == work
    if work:
        # the earliest such instant: just before it, the work is not done
        assert calendar.work_time_between(start, due - dt.timedelta(microseconds=1)) < work


NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("hours", "start", "work", "due_utc"),
    [
        # 2 Nov 2025: 01:00–02:00 happens twice; a minute of work from 00:59 ends at the first 01:00
        (
            ("00:59-01:00",),
            dt.datetime(2025, 11, 2, 0, 59, tzinfo=NEW_YORK),
            dt.timedelta(minutes=1),
            dt.datetime(2025, 11, 2, 5, 0, tzinfo=dt.UTC),
        ),
        # 00:30–02:00 on that day lasts 2.5 hours of real time
        (
            ("00:30-02:00",),
            dt.datetime(2025, 11, 2, 0, 30, tzinfo=NEW_YORK),
            dt.timedelta(hours=2, minutes=30),
            dt.datetime(2025, 11, 2, 7, 0, tzinfo=dt.UTC),
        ),
        # 8 Mar 2026: 02:00–03:00 does not exist; 01:30–03:30 holds one hour of work
        (
            ("01:30-03:30",),
            dt.datetime(2026, 3, 8, 1, 30, tzinfo=NEW_YORK),
            dt.timedelta(hours=1),
            dt.datetime(2026, 3, 8, 7, 30, tzinfo=dt.UTC),
        ),
    ],
)
def test_add_work_time_across_new_york_dst_changes(
    hours: tuple[str, ...], start: dt.datetime, work: dt.timedelta, due_utc: dt.datetime
) -> None:
    calendar = WorkingCalendar(CalendarDef(working_hours=hours, weekend=()), "America/New_York")
    begin = start
    due = calendar.add_work_time(begin, work)
    assert due.astimezone(dt.UTC) == due_utc
    assert calendar.work_time_between(begin, due) == work
