"""Working calendars: which days are working days, and working-time arithmetic.

A company's ``calendar:`` section (:class:`CalendarDef`) plus its time zone make a
:class:`WorkingCalendar`. Whether a local date is a working day is decided in this order,
the first that applies wins:

1. the company's ``extra_workdays`` (working day) and ``extra_holidays`` (day off);
2. the country's public calendar: for China the ``chinesecalendar`` package, with its
   statutory holidays *and* make-up working days (调休, e.g. a Saturday worked so that the
   National Day week is longer); for a year it has no data for (1.11 stops at 2026) the
   ``holidays`` package's ``China``: the statutory holidays the law fixes, with the days
   off in lieu (补假) of those that fall on a weekend, and the make-up working days of the
   years whose arrangement it has. For any other country ``holidays.country_holidays``
   (with the make-up days that package knows for some countries);
3. the weekend (by default the country's: Saturday and Sunday for China and with no
   country; ``holidays`` knows others, e.g. Friday–Saturday).

Every holiday and make-up day names its source (:attr:`DayInfo.source`, e.g.
``holidays 0.109``), and ``kefu deadlines`` shows it. A year no package has data for is
counted by weekday alone and recorded as a warning (:meth:`WorkingCalendar.warnings`,
:meth:`WorkingCalendar.coverage_warnings`); it never fails. Company overrides still apply
everywhere, so a company can enter a year's official arrangement (its make-up working
days) before the packages have it.

Time: every method takes aware datetimes (a naive one is a ``ValueError``), computes in
the calendar's zone and returns aware datetimes **in the calendar's zone**
(:attr:`WorkingCalendar.tz`); storage converts to UTC. Working time is the set of
instants whose local wall-clock time falls in a working-hours period of a working day,
so on a day the clock changes (not in China) a period is as long as the clock says.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import importlib.metadata
import re
import zoneinfo
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import chinese_calendar
import holidays
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

__all__ = [
    "CalendarDef",
    "CalendarError",
    "DayInfo",
    "Explanation",
    "WorkingCalendar",
]

WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY_TITLES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_WEEKDAY_ALIASES: dict[str, int] = {}
for _i, _names in enumerate(
    (
        ("mon", "monday", "周一", "星期一"),
        ("tue", "tues", "tuesday", "周二", "星期二"),
        ("wed", "wednesday", "周三", "星期三"),
        ("thu", "thur", "thurs", "thursday", "周四", "星期四"),
        ("fri", "friday", "周五", "星期五"),
        ("sat", "saturday", "周六", "星期六"),
        ("sun", "sunday", "周日", "周天", "星期日", "星期天"),
    )
):
    for _name in _names:
        _WEEKDAY_ALIASES[_name] = _i

#: chinesecalendar names its holidays in English (its ``Holiday`` enum); the Chinese names
#: are labels for explanations, keyed by the package's own value.
CN_HOLIDAY_ZH = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "National Day": "国庆节",
    "Mid-autumn Festival": "中秋节",
    "Anti-Fascist 70th Day": "中国人民抗日战争暨世界反法西斯战争胜利70周年纪念日",
}

_PERIOD_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*[-–~至]\s*(\d{1,2}):(\d{2})\s*$")
_DAY = dt.timedelta(days=1)
_ZERO = dt.timedelta(0)
#: consecutive days without working time after which a search gives up (a calendar with
#: a year of holidays is a configuration error, not a deadline)
_MAX_IDLE_DAYS = 400
#: how many answers a calendar remembers (:meth:`WorkingCalendar.remember`) before it
#: starts again: a few per open case with deadlines
_ANSWERS = 65536
_ASKED = object()  # no answer remembered
_CACHE_DAYS = 20_000


class CalendarError(ValueError):
    """A calendar computation that cannot be done (e.g. no working time for a year)."""


@functools.cache
def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - vendored copy
        return "?"


def _fmt_minutes(m: int) -> str:
    return f"{m // 60:02d}:{m % 60:02d}"


def _parse_period(text: str) -> tuple[int, int]:
    m = _PERIOD_RE.match(text)
    if not m:
        raise ValueError(f"working-hours period {text!r} is not HH:MM-HH:MM, e.g. 08:30-12:00")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise ValueError(f"working-hours period {text!r} has an impossible time")
    a, b = h1 * 60 + m1, h2 * 60 + m2
    if a >= b:
        raise ValueError(
            f"working-hours period {text!r} ends before it starts; a period "
            "past midnight is two periods: 22:00-24:00 and 00:00-06:00"
        )
    return a, b


def _supported_countries() -> dict[str, Any]:
    return holidays.list_supported_countries()


class CalendarDef(BaseModel):
    """``calendar:`` in ``config/<company>.yaml``.

    ``country``: ``CN`` (default; chinesecalendar), another ISO 3166 code (the ``holidays``
    package; ``subdivision`` picks a state or province there), or ``null`` (weekends
    only). ``working_hours``: periods ``HH:MM-HH:MM`` on every working day, the gaps
    between them (lunch) not counted; ``24:00`` may end a period. ``weekend``: weekday
    names (``sat``, ``sunday``, ``周六``, or ISO numbers 1–7), default the country's.
    ``extra_holidays`` / ``extra_workdays``: dates, or dates mapped to a name, that win
    over the package. ``timezone``: the calendar's IANA zone, default the company's.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    country: str | None = "CN"
    subdivision: str | None = None
    working_hours: tuple[str, ...] = ("08:30-12:00", "13:00-17:30")
    weekend: tuple[str, ...] | None = None
    extra_holidays: dict[dt.date, str | None] = {}
    extra_workdays: dict[dt.date, str | None] = {}
    timezone: str | None = None

    @field_validator("country", mode="before")
    @classmethod
    def _country(cls, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        code = v.strip().upper()
        if code in ("CN", "CHN"):
            return "CN"
        supported = _supported_countries()
        if code not in supported:
            guess = difflib.get_close_matches(code, list(supported), n=1)
            raise ValueError(
                f"unknown country {v!r}: use an ISO 3166 code such as CN, DE, US"
                + (f" (did you mean {guess[0]!r}?)" if guess else "")
            )
        return code

    @field_validator("working_hours", mode="after")
    @classmethod
    def _hours(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("working_hours needs at least one period, e.g. 08:30-12:00")
        periods = sorted(_parse_period(p) for p in v)
        for (a1, b1), (a2, b2) in zip(periods, periods[1:], strict=False):
            if a2 < b1:
                raise ValueError(
                    f"working-hours periods {_fmt_minutes(a1)}-{_fmt_minutes(b1)} and "
                    f"{_fmt_minutes(a2)}-{_fmt_minutes(b2)} overlap"
                )
        return tuple(f"{_fmt_minutes(a)}-{_fmt_minutes(b)}" for a, b in periods)

    @field_validator("weekend", mode="before")
    @classmethod
    def _weekend(cls, v: Any) -> Any:
        if v is None:
            return v
        if isinstance(v, str | int):
            v = [v]
        out: list[str] = []
        for item in v:
            if isinstance(item, int) and not isinstance(item, bool):
                if not 1 <= item <= 7:
                    raise ValueError(f"weekday number {item} is not 1 (Monday) to 7 (Sunday)")
                name = WEEKDAY_NAMES[item - 1]
            elif isinstance(item, str) and item.strip().lower() in _WEEKDAY_ALIASES:
                name = WEEKDAY_NAMES[_WEEKDAY_ALIASES[item.strip().lower()]]
            else:
                raise ValueError(f"unknown weekday {item!r}: write mon, tue, … sun (or 周六, 6)")
            if name not in out:
                out.append(name)
        if len(out) == 7:
            raise ValueError("a weekend of all seven days leaves no working days")
        return sorted(out, key=WEEKDAY_NAMES.index)

    @field_validator("extra_holidays", "extra_workdays", mode="before")
    @classmethod
    def _dates(cls, v: Any) -> Any:
        # a plain list of dates is the common case; a mapping names each day
        if isinstance(v, list | tuple | set | frozenset):
            return dict.fromkeys(v)
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                zoneinfo.ZoneInfo(v)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"unknown time zone {v!r}: use an IANA name such as Asia/Shanghai"
                ) from None
        return v

    @model_validator(mode="after")
    def _consistent(self) -> CalendarDef:
        both = sorted(set(self.extra_holidays) & set(self.extra_workdays))
        if both:
            raise ValueError(
                "dates in both extra_holidays and extra_workdays: "
                + ", ".join(d.isoformat() for d in both)
            )
        if self.subdivision is not None:
            if self.country in (None, "CN"):
                raise ValueError(
                    f"subdivision needs a country other than CN (country is {self.country!r})"
                )
            try:
                holidays.country_holidays(self.country, subdiv=self.subdivision)
            except NotImplementedError:
                subs = holidays.country_holidays(self.country).subdivisions
                raise ValueError(
                    f"unknown subdivision {self.subdivision!r} of {self.country}: "
                    + ", ".join(subs[:40])
                ) from None
        return self

    @property
    def periods(self) -> tuple[tuple[int, int], ...]:
        """The working-hours periods as (start, end) minutes after local midnight."""
        return tuple(_parse_period(p) for p in self.working_hours)


DayReason = Literal[
    "workday", "weekend", "holiday", "makeup_workday", "company_holiday", "company_workday"
]


@dataclass(frozen=True)
class DayInfo:
    """Why a local date is or is not a working day.

    ``reason``: ``workday`` (an ordinary weekday), ``weekend``, ``holiday`` (public
    holiday; ``holiday`` names it, ``holiday_zh`` in Chinese for China), ``makeup_workday``
    (a weekend day worked for a holiday, 调休; ``holiday`` names that holiday),
    ``company_holiday`` / ``company_workday`` (the company's overrides; ``holiday`` is the
    company's name for the day or the public holiday it overrides). ``in_lieu``: a day off
    given in exchange for a make-up working day (China). ``covered``: the package had data
    for the year (``False``: counted by weekday only). ``source``: the package (and version)
    a holiday or make-up working day comes from, e.g. ``chinesecalendar 1.11.0``.
    """

    date: dt.date
    is_workday: bool
    reason: DayReason
    holiday: str | None = None
    holiday_zh: str | None = None
    in_lieu: bool = False
    covered: bool = True
    source: str | None = None

    def describe(self) -> str:
        name = self.holiday or ""
        if self.holiday_zh:
            name = f"{name} ({self.holiday_zh})" if name else self.holiday_zh
        if self.reason == "weekend":
            text = "weekend"
        elif self.reason == "holiday":
            text = name or "public holiday"
            if self.in_lieu:
                text += ", day off in lieu of a make-up working day (调休)"
        elif self.reason == "makeup_workday":
            text = "make-up working day (调休上班)" + (f" for {name}" if name else "")
        elif self.reason == "company_holiday":
            text = "company extra holiday" + (f": {name}" if name else "")
        elif self.reason == "company_workday":
            text = "company extra working day" + (f" (instead of {name})" if name else "")
        else:
            text = "working day"
        if self.source and self.reason in ("holiday", "makeup_workday"):
            text += f"; source {self.source}"
        if not self.covered:
            text += " [no holiday data for this year: weekday rule]"
        return text

    def __str__(self) -> str:
        return f"{self.date.isoformat()} {_WEEKDAY_TITLES[self.date.weekday()]}: {self.describe()}"


@dataclass(frozen=True)
class Explanation:
    """How the time from ``start`` to ``end`` counts on a calendar.

    ``business_time``: the working time between them (:meth:`WorkingCalendar.work_time_between`).
    ``workdays``: the working days after the start's date up to the end's date — what
    :meth:`WorkingCalendar.add_workdays` counts. ``days``: every local date touched, with
    the reason it counts or not. ``warnings``: years counted without holiday data.
    """

    start: dt.datetime
    end: dt.datetime
    timezone: str
    business_time: dt.timedelta
    workdays: int
    days: tuple[DayInfo, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def skipped(self) -> tuple[DayInfo, ...]:
        """The days that were not working days (weekend, holiday, company holiday)."""
        return tuple(d for d in self.days if not d.is_workday)

    @property
    def makeup_workdays(self) -> tuple[DayInfo, ...]:
        """Weekend days that counted because they are make-up working days (调休)."""
        return tuple(d for d in self.days if d.reason == "makeup_workday")

    @property
    def company_workdays(self) -> tuple[DayInfo, ...]:
        return tuple(d for d in self.days if d.reason == "company_workday")

    def lines(self) -> list[str]:
        def hm(t: dt.timedelta) -> str:
            minutes = int(t.total_seconds()) // 60
            return f"{minutes // 60}h{minutes % 60:02d}"

        out = [
            f"{self.start:%Y-%m-%d %H:%M} {_WEEKDAY_TITLES[self.start.weekday()]} → "
            f"{self.end:%Y-%m-%d %H:%M} {_WEEKDAY_TITLES[self.end.weekday()]} ({self.timezone})",
            f"working time counted: {hm(self.business_time)}; working days after the start "
            f"day: {self.workdays}",
        ]
        for d in self.days:
            if not d.is_workday:
                out.append(f"skipped {d}")
            elif d.reason in ("makeup_workday", "company_workday") or not d.covered:
                out.append(f"counted {d}")
        out.extend(f"warning: {w}" for w in self.warnings)
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _aware(moment: dt.datetime, what: str = "datetime") -> dt.datetime:
    if not isinstance(moment, dt.datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be an aware datetime, got {moment!r}")
    return moment.astimezone(dt.UTC)


class WorkingCalendar:
    """A :class:`CalendarDef` in a time zone: working days and working-time arithmetic.

    ``company_timezone`` is used unless the definition names its own ``timezone``.
    Instances are safe to share between threads (their caches only ever fill with the
    same values) and cheap to keep per company.
    """

    def __init__(self, definition: CalendarDef | None, company_timezone: str | dt.tzinfo) -> None:
        self.definition = definition if definition is not None else CalendarDef()
        zone = self.definition.timezone or company_timezone
        self.tz: dt.tzinfo = zoneinfo.ZoneInfo(zone) if isinstance(zone, str) else zone
        self.timezone_name = str(zone) if isinstance(zone, str) else str(self.tz)
        self.periods = self.definition.periods
        self.country = self.definition.country
        self._holidays: holidays.HolidayBase | None = None
        # China after chinesecalendar's last year: the holidays package, names in both languages
        self._cn_en: holidays.HolidayBase | None = None
        self._cn_zh: holidays.HolidayBase | None = None
        if self.country == "CN":
            self._cn_en = holidays.China(language="en_US")
            self._cn_zh = holidays.China(language="zh_CN")
        if self.country not in (None, "CN"):
            self._holidays = holidays.country_holidays(
                self.country, subdiv=self.definition.subdivision
            )
        if self.definition.weekend is not None:
            self.weekend = frozenset(WEEKDAY_NAMES.index(n) for n in self.definition.weekend)
        elif self._holidays is not None:
            self.weekend = frozenset(self._holidays.weekend)
        else:
            self.weekend = frozenset({5, 6})
        self._days: dict[dt.date, DayInfo] = {}
        self._intervals: dict[dt.date, tuple[tuple[dt.datetime, dt.datetime], ...]] = {}
        self._uncovered_seen: set[int] = set()
        # answers of add_work_time / work_time_between / add_workdays by their arguments:
        # a case's deadlines are computed again on each of its changes, from the same start
        self._answers: dict[tuple[Any, ...], Any] = {}

    def __repr__(self) -> str:
        return (
            f"WorkingCalendar(country={self.country!r}, tz={self.timezone_name!r}, "
            f"hours={list(self.definition.working_hours)})"
        )

    # -- coverage -------------------------------------------------------------------------

    @cached_property
    def covered_years(self) -> range | None:
        """The years the country's package has data for; ``None``: every year (no country)."""
        if self.country == "CN":
            # the same bounds chinese_calendar itself checks before answering, joined with
            # those of the holidays package (which reach further on both sides)
            assert self._cn_en is not None
            years = [d.year for d in chinese_calendar.holidays]
            return range(
                min(min(years), self._cn_en.start_year),
                max(max(years), self._cn_en.end_year) + 1,
            )
        if self._holidays is not None:
            start = getattr(self._holidays, "start_year", dt.MINYEAR)
            end = getattr(self._holidays, "end_year", dt.MAXYEAR)
            return range(start, end + 1)
        return None

    def _fallback_text(self) -> str:
        if self.weekend == frozenset({5, 6}):
            return "counted as Mon–Fri"
        days = ", ".join(_WEEKDAY_TITLES[i] for i in sorted(self.weekend))
        return f"counted as working days except the weekend ({days})"

    def _coverage_warning(self, year: int) -> str:
        if self.country == "CN":
            packages = (
                f"chinesecalendar {_version('chinesecalendar')} and holidays "
                f"{_version('holidays')} have"
            )
        else:
            packages = f"holidays {_version('holidays')} ({self.country}) has"
        return (
            f"{packages} no data for {year}; {year} {self._fallback_text()} "
            "(list that year's holidays and make-up working days under extra_holidays / "
            "extra_workdays, or upgrade the package)"
        )

    def coverage_warnings(self, years: Iterable[int]) -> list[str]:
        """One human-readable warning per year in ``years`` the package has no data for.

        The loader can call this for the current and the next year at start-up.
        """
        covered = self.covered_years
        if covered is None:
            return []
        return [self._coverage_warning(y) for y in sorted(set(years)) if y not in covered]

    def warnings(self) -> list[str]:
        """Warnings for the uncovered years this calendar has been asked about so far."""
        return [self._coverage_warning(y) for y in sorted(self._uncovered_seen)]

    # -- days -----------------------------------------------------------------------------

    def local_date(self, moment: dt.datetime) -> dt.date:
        """The date of an aware instant in the calendar's zone."""
        return _aware(moment).astimezone(self.tz).date()

    def day_info(self, day: dt.date) -> DayInfo:
        """Whether ``day`` (a local date) is a working day, and why."""
        day = self._as_date(day)
        info = self._days.get(day)
        if info is None:
            info = self._day_info(day)
            if len(self._days) > _CACHE_DAYS:
                self._days.clear()
            self._days[day] = info
        return info

    def is_workday(self, day: dt.date) -> bool:
        """Whether ``day`` is a working day. An aware datetime means its local date."""
        return self.day_info(day).is_workday

    def _as_date(self, day: dt.date) -> dt.date:
        if isinstance(day, dt.datetime):  # a datetime is a date too: use its local date
            return self.local_date(day)
        return day

    def _day_info(self, day: dt.date) -> DayInfo:
        defn = self.definition
        public: DayInfo | None = None
        covered = True
        if self.country == "CN":
            public, covered = self._cn_day(day)
            if not covered:
                public, covered = self._cn_holidays_day(day)
        elif self._holidays is not None:
            public, covered = self._holidays_day(day)
        if not covered:
            self._uncovered_seen.add(day.year)
        if day in defn.extra_workdays:
            name = defn.extra_workdays[day] or (
                public.holiday if public and not public.is_workday else None
            )
            return DayInfo(day, True, "company_workday", name, None, covered=covered)
        if day in defn.extra_holidays:
            return DayInfo(day, False, "company_holiday", defn.extra_holidays[day], covered=covered)
        if public is not None:
            return public
        if day.weekday() in self.weekend:
            return DayInfo(day, False, "weekend", covered=covered)
        return DayInfo(day, True, "workday", covered=covered)

    def _cn_day(self, day: dt.date) -> tuple[DayInfo | None, bool]:
        """chinesecalendar's holiday or make-up day for ``day``; None leaves it to the weekend."""
        try:
            # (False, name): a make-up working day for holiday `name`; (True, name): the
            # holiday; (x, None): an ordinary day, which our weekend decides (with the
            # default Sat/Sun weekend that is exactly chinese_calendar.is_workday)
            off, name = chinese_calendar.get_holiday_detail(day)
            in_lieu = chinese_calendar.is_in_lieu(day) if off and name else False
        except NotImplementedError:  # a year the package has no data for
            return None, False
        if name is None:
            return None, True
        zh = CN_HOLIDAY_ZH.get(name)
        source = f"chinesecalendar {_version('chinesecalendar')}"
        if off:
            return DayInfo(day, False, "holiday", name, zh, in_lieu=in_lieu, source=source), True
        return DayInfo(day, True, "makeup_workday", name, zh, source=source), True

    def _cn_holidays_day(self, day: dt.date) -> tuple[DayInfo | None, bool]:
        """The holidays package's China for a year chinesecalendar does not cover."""
        assert self._cn_en is not None and self._cn_zh is not None
        covered = self.covered_years
        if covered is not None and day.year not in covered:
            return None, False
        name = self._cn_en.get(day)  # also fills the year's weekend_workdays
        source = f"holidays {_version('holidays')}"
        workdays: set[dt.date] = getattr(self._cn_en, "weekend_workdays", set())
        if not any(d.year == day.year for d in workdays):
            source += f" (no make-up working days 调休 listed for {day.year})"
        if name is not None:
            zh = self._cn_zh.get(day)
            return DayInfo(
                day, False, "holiday", str(name), str(zh) if zh else None, source=source
            ), True
        if day in workdays:
            return DayInfo(day, True, "makeup_workday", source=source), True
        return None, True

    def _holidays_day(self, day: dt.date) -> tuple[DayInfo | None, bool]:
        assert self._holidays is not None
        covered = self.covered_years
        if covered is not None and day.year not in covered:
            return None, False
        name = self._holidays.get(day)  # also fills the year's weekend_workdays
        source = f"holidays {_version('holidays')}"
        if name is not None:
            return DayInfo(day, False, "holiday", str(name), source=source), True
        if day in getattr(self._holidays, "weekend_workdays", ()):
            return DayInfo(day, True, "makeup_workday", source=source), True
        return None, True

    def days(self, first: dt.date, last: dt.date) -> Iterator[DayInfo]:
        """:meth:`day_info` for each date from ``first`` to ``last`` inclusive."""
        day = first
        while day <= last:
            yield self.day_info(day)
            day += _DAY

    # -- working time ---------------------------------------------------------------------

    def working_periods(self, day: dt.date) -> tuple[tuple[dt.datetime, dt.datetime], ...]:
        """The working time of local date ``day`` as sorted UTC ``[start, end)`` intervals.

        Empty on a day off. On a day the clock changes the intervals are exactly the
        instants whose local time lies in a period (a skipped hour counts nothing, a
        repeated hour counts twice).
        """
        day = self._as_date(day)
        found = self._intervals.get(day)
        if found is None:
            found = self._working_periods(day) if self.is_workday(day) else ()
            if len(self._intervals) > _CACHE_DAYS:
                self._intervals.clear()
            self._intervals[day] = found
        return found

    def _working_periods(self, day: dt.date) -> tuple[tuple[dt.datetime, dt.datetime], ...]:
        midnight = dt.datetime.combine(day, dt.time())
        # the UTC offsets in force on this day (two if the clock changes that day)
        offsets = {
            (wall.replace(tzinfo=self.tz, fold=fold).utcoffset() or _ZERO)
            for wall in (midnight, midnight + _DAY)
            for fold in (0, 1)
        }
        out: list[tuple[dt.datetime, dt.datetime]] = []
        for a_min, b_min in self.periods:
            wall_a = midnight + dt.timedelta(minutes=a_min)
            wall_b = midnight + dt.timedelta(minutes=b_min)
            for off in offsets:
                a = (wall_a - off).replace(tzinfo=dt.UTC)
                b = (wall_b - off).replace(tzinfo=dt.UTC)
                out.extend(self._where_offset(a, b, off))
        out.sort()
        merged: list[tuple[dt.datetime, dt.datetime]] = []
        for a, b in out:
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
            else:
                merged.append((a, b))
        return tuple(merged)

    def _offset(self, moment: dt.datetime) -> dt.timedelta:
        return moment.astimezone(self.tz).utcoffset() or _ZERO

    def _where_offset(
        self, a: dt.datetime, b: dt.datetime, off: dt.timedelta
    ) -> list[tuple[dt.datetime, dt.datetime]]:
        """The part of UTC ``[a, b)`` where the zone's offset is ``off``."""
        tick = dt.timedelta(seconds=1)
        oa, ob = self._offset(a), self._offset(b - tick)
        if oa == ob:
            return [(a, b)] if oa == off else []
        # one change inside: find its second by bisection (zones change on whole seconds)
        lo, hi = 0, int((b - a).total_seconds()) - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._offset(a + dt.timedelta(seconds=mid)) == oa:
                lo = mid
            else:
                hi = mid
        change = a + dt.timedelta(seconds=hi)
        out = []
        if oa == off:
            out.append((a, change))
        if ob == off:
            out.append((change, b))
        return out

    def forget_answers(self) -> None:
        """Compute every answer again from now on (benchmarks: as a new process would)."""
        self._answers.clear()

    def remember(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        """``compute()``, remembered under ``key`` with the calendar's answers (and forgotten
        with them): the key's first item names what is remembered, then the arguments, each
        instant with its zone and fold (Python's arithmetic on an aware instant follows its
        zone's wall clock, and two instants of one zone compare equal on their wall time
        alone). The calendar's own answers and the deadlines' targets use it."""
        found = self._answers.get(key, _ASKED)
        if found is _ASKED:
            if len(self._answers) >= _ANSWERS:
                self._answers.clear()
            found = self._answers[key] = compute()
        return found

    def add_work_time(self, start: dt.datetime, work: dt.timedelta) -> dt.datetime:
        """The earliest instant by which ``work`` of working time has passed since ``start``.

        Only working-hours periods of working days count; lunch and nights do not. A start
        outside working hours begins counting at the next period; a deadline that uses up
        a period exactly ends at that period's end (4 work hours from 08:30 with a 12:00
        lunch: 12:00, not 13:00). ``work == 0`` returns ``start``. Raises
        :class:`CalendarError` when no working time exists for over a year.
        """
        s = _aware(start, "start")
        if work < _ZERO:
            raise ValueError(f"working time must not be negative, got {work!r}")
        if work == _ZERO:
            return s.astimezone(self.tz)
        return self.remember(
            ("work", s, s.tzinfo, s.fold, work), lambda: self._add_work_time(s, work)
        )

    def _add_work_time(self, s: dt.datetime, work: dt.timedelta) -> dt.datetime:
        remaining = work
        # from the day before: in a zone that moves its clock back over midnight an
        # instant may still belong to the previous local date
        day = s.astimezone(self.tz).date() - _DAY
        idle = 0
        while True:
            periods = self.working_periods(day)
            for a, b in periods:
                if b <= s:
                    continue
                a = max(a, s)
                if remaining <= b - a:
                    return (a + remaining).astimezone(self.tz)
                remaining -= b - a
            idle = 0 if periods else idle + 1
            if idle > _MAX_IDLE_DAYS:
                raise CalendarError(
                    f"no working time in the {_MAX_IDLE_DAYS} days before {day}: "
                    "check the calendar's holidays and weekend"
                )
            day += _DAY

    def work_time_between(self, a: dt.datetime, b: dt.datetime) -> dt.timedelta:
        """The working time in ``[a, b)``; negative if ``b`` is before ``a``."""
        ua, ub = _aware(a, "a"), _aware(b, "b")
        if ub < ua:
            return -self.work_time_between(b, a)
        key = ("between", ua, ua.tzinfo, ua.fold, ub, ub.tzinfo, ub.fold)
        return self.remember(key, lambda: self._work_time_between(ua, ub))

    def _work_time_between(self, ua: dt.datetime, ub: dt.datetime) -> dt.timedelta:
        total = _ZERO
        day = ua.astimezone(self.tz).date() - _DAY
        last = ub.astimezone(self.tz).date() + _DAY
        while day <= last:
            for pa, pb in self.working_periods(day):
                lo, hi = max(pa, ua), min(pb, ub)
                if hi > lo:
                    total += hi - lo
            day += _DAY
        return total

    def next_workday(self, day: dt.date) -> dt.date:
        """The first working day after local date ``day``."""
        day = self._as_date(day)
        for _ in range(_MAX_IDLE_DAYS + 1):
            day += _DAY
            if self.is_workday(day):
                return day
        raise CalendarError(f"no working day in the {_MAX_IDLE_DAYS} days after {day}")

    def add_workdays(self, start: dt.datetime, n: int) -> dt.datetime:
        """The same local clock time on the ``n``-th working day after ``start``'s local date.

        The start's own date never counts, whether or not it is a working day (开始的当日
        不计入): received Tuesday 10:00, "3 working days" is due Friday 10:00 — Wednesday,
        Thursday, Friday — and each holiday or weekend day in between pushes it a day
        later, while a make-up working day (调休) counts. Received Saturday 10:00 it is
        due Wednesday 10:00. The clock time is kept as is, even outside working hours
        (use working time, ``4 work hours``, when the hours matter). ``n == 0`` returns
        ``start``.
        """
        s = _aware(start, "start")
        if n < 0:
            raise ValueError(f"workdays must not be negative, got {n!r}")
        return self.remember(("workdays", s, s.tzinfo, s.fold, n), lambda: self._add_workdays(s, n))

    def _add_workdays(self, s: dt.datetime, n: int) -> dt.datetime:
        local = s.astimezone(self.tz)
        day = local.date()
        for _ in range(n):
            day = self.next_workday(day)
        if n == 0:
            return local
        wall = dt.datetime.combine(day, local.time())  # time() keeps the fold
        # a local time the clock skips that day moves forward, as in UTC
        return wall.replace(tzinfo=self.tz).astimezone(dt.UTC).astimezone(self.tz)

    def explain(self, start: dt.datetime, end: dt.datetime) -> Explanation:
        """How the time from ``start`` to ``end`` counts: business time, days skipped and why,
        make-up and company working days counted, and coverage warnings."""
        us, ue = _aware(start, "start"), _aware(end, "end")
        if ue < us:
            raise ValueError(f"explain: end {end} is before start {start}")
        ls, le = us.astimezone(self.tz), ue.astimezone(self.tz)
        last = le.date()
        if le.time() == dt.time() and last > ls.date():
            last -= _DAY  # a deadline at 00:00 ends the day before; the next one is not touched
        days = tuple(self.days(ls.date(), last))
        workdays = sum(1 for d in days if d.is_workday and d.date > ls.date())
        warnings = self.coverage_warnings({d.date.year for d in days})
        return Explanation(
            ls,
            le,
            self.timezone_name,
            self.work_time_between(us, ue),
            workdays,
            days,
            tuple(warnings),
        )
