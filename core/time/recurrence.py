"""Recurrence: the occurrences of a schedule (every day/week/month/quarter/year, on a
day, at a time) in a time zone — pure date arithmetic, no database.

A schedule's ``on:`` and ``at:`` may be overridden per company; ``override`` is that
override (``enabled``, ``on``, ``at``) or None.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dateutil import rrule
from dateutil.relativedelta import relativedelta

if TYPE_CHECKING:  # the definition's shape only; time stays below the spec layer
    from core.spec.definitions import ScheduleDef

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
STEP = {
    "day": relativedelta(days=1),
    "week": relativedelta(weeks=1),
    "month": relativedelta(months=1),
    "quarter": relativedelta(months=3),
    "year": relativedelta(years=1),
}


def effective(sdef: ScheduleDef, override: Any) -> tuple[Any, str, bool]:
    on, at, enabled = sdef.on, sdef.at, True
    if override is not None:
        enabled = override.enabled
        on = override.on if override.on is not None else on
        at = override.at or at
    return on, at, enabled


def check_on(every: str, on: Any) -> str | None:
    """Why ``on`` does not fit ``every`` (None when it does)."""
    if on is None:
        return None
    if every in ("month", "quarter"):
        if isinstance(on, bool) or not isinstance(on, int) or not 1 <= on <= 31:
            return f"on: for every {every} is a day of the month, 1 to 31 (not {on!r})"
    elif every == "week":
        if not (isinstance(on, str) and on.lower()[:3] in WEEKDAYS):
            return f"on: for every week is a weekday, mon to sun (not {on!r})"
    elif every == "year":
        try:
            dt.date(2000, *map(int, str(on).split("-")))
        except (TypeError, ValueError):
            return f'on: for every year is a month and day, e.g. "12-01" (not {on!r})'
    elif every == "day":
        return "on: makes no sense for every day"
    return None


def company_occurrences(
    sdef: ScheduleDef, override: Any, tz: dt.tzinfo, after: dt.datetime
) -> Iterator[dt.datetime]:
    """Occurrences of a company schedule strictly after ``after``, in local time."""
    on, at, _ = effective(sdef, override)
    hour, minute = map(int, at.split(":"))
    local = after.astimezone(tz)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None) - dt.timedelta(
        days=400
    )
    every = sdef.every
    assert isinstance(every, str)
    kw: dict[str, Any] = {"dtstart": start, "byhour": hour, "byminute": minute, "bysecond": 0}
    if every == "day":
        rule = rrule.rrule(rrule.DAILY, **kw)
    elif every == "week":
        day = WEEKDAYS.index(str(on or "mon").lower()[:3])
        rule = rrule.rrule(rrule.WEEKLY, byweekday=day, **kw)
    elif every in ("month", "quarter"):
        months = None if every == "month" else (1, 4, 7, 10)
        # a day the month lacks (31) falls on its last day
        day = int(on or 1)
        rule = rrule.rrule(
            rrule.MONTHLY,
            bymonth=months,
            bymonthday=(day, -1) if day > 28 else day,
            bysetpos=1 if day > 28 else None,
            **kw,
        )
    else:
        month, day = map(int, str(on).split("-")) if on else (1, 1)
        rule = rrule.rrule(rrule.YEARLY, bymonth=month, bymonthday=day, **kw)
    for naive in rule:
        moment = naive.replace(tzinfo=tz)
        if moment > after:
            yield moment


def case_occurrences(
    sdef: ScheduleDef, override: Any, tz: dt.tzinfo, origin: dt.datetime
) -> Iterator[dt.datetime]:
    """Occurrences of a per-case schedule counted from ``origin`` (at the schedule's time)."""
    _, at, _ = effective(sdef, override)
    hour, minute = map(int, at.split(":"))
    phases = sdef.every if isinstance(sdef.every, list) else None
    base = origin.astimezone(tz).replace(hour=hour, minute=minute, second=0, microsecond=0)
    offset = relativedelta()
    if phases is None:
        assert isinstance(sdef.every, str)
        while True:
            offset += STEP[sdef.every]
            yield (base.replace(tzinfo=None) + offset).replace(tzinfo=tz)
    for phase in phases:
        n = 0
        while phase.count is None or n < phase.count:
            n += 1
            offset += STEP[phase.every]
            yield (base.replace(tzinfo=None) + offset).replace(tzinfo=tz)
