"""Durations written in rule files (``24h``, ``3 workdays``, ``3 months``) as typed values.

Five kinds, because a deadline means different things in different procedures:

=========================  ==========================================  ======================
kind                       written                                     :meth:`Duration.add`
=========================  ==========================================  ======================
:class:`Elapsed`           ``24h`` ``30min`` ``90 s`` ``1h30min``      real elapsed time
                           ``24小时`` ``30分钟``
:class:`WorkTime`          ``4 work hours`` ``30 work minutes``        working hours only
                           ``4个工作小时``                               (lunch, nights, days
                                                                       off excluded)
:class:`Workdays`          ``3 workdays`` ``3 working days``           same clock time, that
                           ``3个工作日`` ``三個工作日``                    many working days later
:class:`CalendarSpan`      ``3 months`` ``2 weeks`` ``1 year``         same local clock time,
                           ``10 days`` ``3个月`` ``十日``                 calendar later
:class:`DayEnd`            ``same day`` ``当天``, ``next day`` ``次日``   end of that local day
=========================  ==========================================  ======================

A bare day count (``3 days``, ``3天``, ``十日``) is calendar days, as written: where a
source leaves "3天" open, the pack makes the duration a parameter (PROCEDURES.md).
``3月`` is refused because it reads as "March"; ``3个月`` is three months.

:func:`parse_duration` raises :class:`DurationError` with a 0-based ``col`` into the text
and a hint listing the accepted forms, so the loader can report file:line:col.
``str(duration)`` is canonical and parses back to an equal value.
``Duration`` is also a pydantic type: a model field ``sla: Duration`` accepts the text.
"""

from __future__ import annotations

import calendar as _cal
import datetime as dt
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from core.time.calendars import WorkingCalendar

if TYPE_CHECKING:  # the schema hooks' argument types, for the type checker only
    from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
    from pydantic.json_schema import JsonSchemaValue
    from pydantic_core import CoreSchema

__all__ = [
    "ACCEPTED_FORMS",
    "CalendarSpan",
    "DayEnd",
    "Duration",
    "DurationError",
    "Elapsed",
    "WorkTime",
    "Workdays",
    "parse_duration",
]

ACCEPTED_FORMS = (
    "accepted: 24h, 30min, 90s, 1h30min (elapsed); 4 work hours, 30 work minutes (working "
    "time); 3 workdays (working days); 3 days, 2 weeks, 3 months, 1 year (calendar); "
    "same day, next day; Chinese: 24小时, 30分钟, 4个工作小时, 3个工作日, 3天, 2周, 3个月, 1年, "
    "当天, 次日"
)

# Upper bounds keep a typo ("3000 workdays") from becoming a timer nobody will see fire,
# and keep the calendar walk bounded.
_MAX_SECONDS = 3660 * 86400
_MAX_WORKDAYS = 1000
_MAX_MONTHS = 100 * 12
_MAX_DAYS = 36600


class DurationError(ValueError):
    """A duration text that does not parse. ``col`` is a 0-based offset into the text.

    A ``ValueError``, so a pydantic validator that meets one reports it as a validation
    error of the field.
    """

    def __init__(
        self, message: str, col: int = 0, hint: str | None = ACCEPTED_FORMS, text: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.col = col
        self.hint = hint
        self.text = text

    def __str__(self) -> str:
        out = self.message
        if self.text is not None:
            out += f" (column {self.col + 1} of {self.text!r})"
        if self.hint:
            out += f"; {self.hint}"
        return out

    def __repr__(self) -> str:
        return f"DurationError({self.message!r}, col={self.col})"


class Duration(ABC):
    """A duration from a rule file. Subclasses are frozen dataclasses (hashable, comparable)."""

    #: which kind, for diagnostics and serialisers
    kind: ClassVar[str]

    @abstractmethod
    def add(self, start: dt.datetime, calendar: WorkingCalendar) -> dt.datetime:
        """The deadline ``self`` after ``start`` (aware), in ``calendar.tz`` (aware).

        Raises ``ValueError`` for a naive ``start``.
        """

    @abstractmethod
    def __str__(self) -> str:
        """The canonical text; :func:`parse_duration` reads it back to an equal value."""

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Same as :func:`parse_duration`, checking the result is a ``cls``."""
        return _coerce(cls, text)

    # -- pydantic -------------------------------------------------------------------------

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        # pydantic_core is needed only when a model using Duration is built
        from pydantic_core import core_schema

        return core_schema.no_info_plain_validator_function(
            lambda value: _coerce(cls, value),
            serialization=core_schema.to_string_ser_schema(),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "examples": ["24h", "3 workdays", "3 months", "same day"]}


_KIND_NAMES = {
    "elapsed": "elapsed time such as 24h",
    "work_time": "working time such as 4 work hours",
    "workdays": "working days such as 3 workdays",
    "calendar": "calendar time such as 3 months",
    "day_end": "same day / next day",
}


def _coerce(cls: type[Duration], value: Any) -> Duration:
    if isinstance(value, Duration):
        parsed = value
    elif isinstance(value, str):
        parsed = parse_duration(value)
    else:
        raise DurationError(f"expected a duration text, not {type(value).__name__} {value!r}")
    if not isinstance(parsed, cls):
        raise DurationError(
            f"expected {_KIND_NAMES.get(getattr(cls, 'kind', ''), cls.__name__)}, "
            f"not {_KIND_NAMES[parsed.kind]} ({parsed})",
            hint=None,
        )
    return parsed


@dataclass(frozen=True)
class ParamDuration:
    """A duration a company sets: ``param.<name>`` in a rule file, resolved when the pack
    is compiled for a company (the parameter's type is ``duration``)."""

    name: str

    def __str__(self) -> str:
        return f"param.{self.name}"


def duration_or_param(value: Any) -> Duration | ParamDuration:
    """A duration text, or ``param.<name>`` naming a duration parameter."""
    if isinstance(value, Duration | ParamDuration):
        return value
    if isinstance(value, str) and value.strip().startswith("param."):
        name = value.strip()[len("param.") :]
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise DurationError(f"'{value}' is not a parameter name", hint="write param.<name>")
        return ParamDuration(name)
    return _coerce(Duration, value)  # type: ignore[type-abstract]  # any concrete kind


def subtract(duration: Duration, moment: dt.datetime, calendar: WorkingCalendar) -> dt.datetime:
    """The instant ``duration`` before ``moment`` (``before: 15 min`` of a field).

    Elapsed and calendar time only: "3 workdays before" has no single meaning when the
    moment itself is not a working time, so it is refused (ValueError)."""
    _aware(moment)
    if isinstance(duration, Elapsed):
        return (moment.astimezone(dt.UTC) - duration.delta).astimezone(calendar.tz)
    if isinstance(duration, CalendarSpan):
        local = moment.astimezone(calendar.tz)
        y, m = divmod(local.month - 1 - duration.months, 12)
        year, month = local.year + y, m + 1
        day = min(local.day, _cal.monthrange(year, month)[1])
        date = dt.date(year, month, day) - dt.timedelta(days=duration.days)
        return _resolve(dt.datetime.combine(date, local.time()), calendar.tz)
    raise ValueError(f"before: takes elapsed or calendar time, not {_KIND_NAMES[duration.kind]}")


def _aware(start: dt.datetime) -> None:
    if not isinstance(start, dt.datetime) or start.tzinfo is None or start.utcoffset() is None:
        raise ValueError(f"a deadline needs an aware start datetime, got {start!r}")


def _resolve(wall: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """A local wall time made real: a time the clock skips (DST) moves forward, as in UTC."""
    return wall.replace(tzinfo=tz).astimezone(dt.UTC).astimezone(tz)


@dataclass(frozen=True)
class Elapsed(Duration):
    """Real elapsed time: ``24h`` after Friday 10:00 is Saturday 10:00 (days off count)."""

    delta: dt.timedelta
    kind: ClassVar[str] = "elapsed"

    def __post_init__(self) -> None:
        if self.delta <= dt.timedelta(0) or self.delta.microseconds:
            raise ValueError(
                f"Elapsed needs a positive whole number of seconds, got {self.delta!r}"
            )

    def add(self, start: dt.datetime, calendar: WorkingCalendar) -> dt.datetime:
        _aware(start)
        # UTC arithmetic: across a DST change 24h stays 24 real hours
        return (start.astimezone(dt.UTC) + self.delta).astimezone(calendar.tz)

    def __str__(self) -> str:
        total = int(self.delta.total_seconds())
        h, rest = divmod(total, 3600)
        m, s = divmod(rest, 60)
        return "".join(f"{n}{u}" for n, u in ((h, "h"), (m, "min"), (s, "s")) if n)


@dataclass(frozen=True)
class WorkTime(Duration):
    """Working time: only the calendar's working hours on working days count."""

    delta: dt.timedelta
    kind: ClassVar[str] = "work_time"

    def __post_init__(self) -> None:
        if self.delta <= dt.timedelta(0) or self.delta % dt.timedelta(minutes=1):
            raise ValueError(
                f"WorkTime needs a positive whole number of minutes, got {self.delta!r}"
            )

    def add(self, start: dt.datetime, calendar: WorkingCalendar) -> dt.datetime:
        return calendar.add_work_time(start, self.delta)

    def __str__(self) -> str:
        h, m = divmod(int(self.delta.total_seconds()) // 60, 60)
        parts = []
        if h:
            parts.append(f"{h} work hour" + ("s" if h != 1 else ""))
        if m:
            parts.append(f"{m} work minute" + ("s" if m != 1 else ""))
        return " ".join(parts)


@dataclass(frozen=True)
class Workdays(Duration):
    """Working days: the same local clock time ``count`` working days later.

    See :meth:`core.time.calendars.WorkingCalendar.add_workdays` for the exact counting.
    """

    count: int
    kind: ClassVar[str] = "workdays"

    def __post_init__(self) -> None:
        if self.count <= 0:
            raise ValueError(f"Workdays needs a positive count, got {self.count!r}")

    def add(self, start: dt.datetime, calendar: WorkingCalendar) -> dt.datetime:
        return calendar.add_workdays(start, self.count)

    def __str__(self) -> str:
        return f"{self.count} workday" + ("s" if self.count != 1 else "")


@dataclass(frozen=True)
class CalendarSpan(Duration):
    """Calendar months and days, at the same local clock time.

    Months first, then days. A day the target month lacks becomes its last day
    (31 January + 1 month = 28 or 29 February), as dateutil's ``relativedelta`` does.
    Years are stored as 12 months and weeks as 7 days.
    """

    months: int = 0
    days: int = 0
    kind: ClassVar[str] = "calendar"

    def __post_init__(self) -> None:
        if self.months < 0 or self.days < 0 or not (self.months or self.days):
            raise ValueError(f"CalendarSpan needs positive months or days, got {self!r}")

    def add(self, start: dt.datetime, calendar: WorkingCalendar) -> dt.datetime:
        _aware(start)
        local = start.astimezone(calendar.tz)
        y, m = divmod(local.month - 1 + self.months, 12)
        year, month = local.year + y, m + 1
        day = min(local.day, _cal.monthrange(year, month)[1])
        date = dt.date(year, month, day) + dt.timedelta(days=self.days)
        wall = dt.datetime.combine(date, local.time())  # time() keeps the fold
        return _resolve(wall, calendar.tz)

    def __str__(self) -> str:
        parts = []
        if self.months:
            n, unit = (
                (self.months // 12, "year") if self.months % 12 == 0 else (self.months, "month")
            )
            parts.append(f"{n} {unit}" + ("s" if n != 1 else ""))
        if self.days:
            n, unit = (self.days // 7, "week") if self.days % 7 == 0 else (self.days, "day")
            parts.append(f"{n} {unit}" + ("s" if n != 1 else ""))
        return " ".join(parts)


@dataclass(frozen=True)
class DayEnd(Duration):
    """The end of the local calendar day of the start (``same day``) or of the next one.

    "End" is the first instant of the following day (00:00 local), so a timer set to it
    fires exactly when the day is over. Working hours play no part (当天 = that calendar
    day); a procedure that means "by close of business" uses working time instead.
    """

    days_after: Literal[0, 1] = 0
    kind: ClassVar[str] = "day_end"

    def __post_init__(self) -> None:
        if self.days_after not in (0, 1):
            raise ValueError(
                f"DayEnd.days_after is 0 (same day) or 1 (next day), got {self.days_after!r}"
            )

    def add(self, start: dt.datetime, calendar: WorkingCalendar) -> dt.datetime:
        _aware(start)
        local = start.astimezone(calendar.tz)
        date = local.date() + dt.timedelta(days=self.days_after + 1)
        return _resolve(dt.datetime.combine(date, dt.time()), calendar.tz)

    def __str__(self) -> str:
        return "next day" if self.days_after else "same day"


# -- parser ---------------------------------------------------------------------------------

Family = Literal["elapsed", "work_time", "workdays", "calendar"]


@dataclass(frozen=True)
class _Unit:
    family: Family
    slot: str  # which unit of the family, to refuse "1h 2h"
    factor: int  # seconds (elapsed, work_time), workdays, months or days (calendar)
    target: Literal["seconds", "workdays", "months", "days"]


_FAMILY_NAMES: dict[str, str] = {
    "elapsed": "elapsed time",
    "work_time": "working time",
    "workdays": "working days",
    "calendar": "calendar time",
}

_H = _Unit("elapsed", "hours", 3600, "seconds")
_MIN = _Unit("elapsed", "minutes", 60, "seconds")
_S = _Unit("elapsed", "seconds", 1, "seconds")
_WH = _Unit("work_time", "work hours", 3600, "seconds")
_WMIN = _Unit("work_time", "work minutes", 60, "seconds")
_WD = _Unit("workdays", "workdays", 1, "workdays")
_Y = _Unit("calendar", "years", 12, "months")
_MO = _Unit("calendar", "months", 1, "months")
_W = _Unit("calendar", "weeks", 7, "days")
_D = _Unit("calendar", "days", 1, "days")

_GE = r"[个個]?"  # the measure word, optional where Chinese allows it
_WORK_EN = r"(?:work(?:ing)?|business)\s*"
_END = r"(?![a-z])"  # not \b: in "1h30min" the h is followed by a digit
# Order matters: longer forms first ("work hours" before "hours", "工作日" before "日").
_UNITS: tuple[tuple[re.Pattern[str], _Unit], ...] = tuple(
    (re.compile(p, re.IGNORECASE), u)
    for p, u in (
        (_WORK_EN + r"(?:hours?|hrs?)" + _END, _WH),
        (_WORK_EN + r"(?:minutes?|mins?)" + _END, _WMIN),
        (_WORK_EN + r"days?" + _END, _WD),
        (_GE + r"工作(?:小[时時]|[钟鐘][头頭])", _WH),
        (r"工作分[钟鐘]", _WMIN),
        (_GE + r"工作[日天]", _WD),
        (r"(?:hours?|hrs?|h)" + _END, _H),
        (r"(?:minutes?|mins?)" + _END, _MIN),
        (r"(?:seconds?|secs?|s)" + _END, _S),
        (_GE + r"(?:小[时時]|[钟鐘][头頭])", _H),
        (r"分[钟鐘]", _MIN),
        (r"秒[钟鐘]?", _S),
        (r"years?" + _END, _Y),
        (r"months?" + _END, _MO),
        (r"(?:weeks?|w)" + _END, _W),
        (r"(?:days?|d)" + _END, _D),
        (r"年", _Y),
        (r"[个個]月", _MO),
        (_GE + r"(?:星期|礼拜|禮拜)|[周週]", _W),
        (r"[天日]", _D),
    )
)

_SAME_DAY = re.compile(
    r"(?:same\s+day|end\s+of\s+(?:the\s+)?day|当天|当日|當天|當日|即日|同日)", re.IGNORECASE
)
_NEXT_DAY = re.compile(
    r"(?:next\s+day|end\s+of\s+(?:the\s+)?next\s+day|次日|第二天|翌日|隔天)", re.IGNORECASE
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?|[零〇一二两兩三四五六七八九十百]+")
_WORD = re.compile(r"[A-Za-z]+(?:\s+[A-Za-z]+)?|[^\s\d]")
_CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "兩": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_KNOWN_WORDS = (
    "h",
    "hour",
    "hours",
    "min",
    "minutes",
    "s",
    "seconds",
    "work hours",
    "work minutes",
    "workdays",
    "working days",
    "business days",
    "days",
    "weeks",
    "months",
    "years",
)


def _cn_number(text: str) -> int | None:
    """一 … 九百九十九 (the numbers rule files write in words); ``None`` if malformed."""
    total, digit, last = 0, None, ""
    for ch in text:
        if ch in _CN_DIGITS:
            if digit is not None and last not in "零〇":
                return None  # 二三
            digit = _CN_DIGITS[ch]
        elif ch in "十百":
            scale = 10 if ch == "十" else 100
            total += (1 if digit is None else digit) * scale
            digit = None
        last = ch
    return total + (digit or 0)


def parse_duration(text: str) -> Duration:
    """Parse a duration written in a rule file; raise :class:`DurationError` if it is not one.

    Terms of one kind may be combined (``1h30min``, ``1 year 6 months``); kinds may not
    (``1 day 2h`` is refused: write ``26h``). Amounts are whole numbers, in digits or in
    Chinese (``三个工作日``). Case and spaces do not matter.
    """
    if not isinstance(text, str):
        raise DurationError(f"expected a duration text, not {type(text).__name__}")
    stripped = text.strip()
    lead = len(text) - len(text.lstrip())

    def fail(message: str, col: int, hint: str | None = ACCEPTED_FORMS) -> DurationError:
        return DurationError(message, col, hint, text)

    if not stripped:
        raise fail("empty duration", 0)
    if _SAME_DAY.fullmatch(stripped):
        return DayEnd(0)
    if _NEXT_DAY.fullmatch(stripped):
        return DayEnd(1)

    family: Family | None = None
    family_col = 0
    first_term = ""
    seen: dict[str, int] = {}
    totals = {"seconds": 0, "workdays": 0, "months": 0, "days": 0}
    pos = lead
    end = lead + len(stripped)
    while pos < end:
        while pos < end and text[pos].isspace():
            pos += 1
        term_start = pos
        num = _NUMBER.match(text, pos)
        if not num:
            if text[pos] == "半":
                raise _unknown_unit(text, pos)
            word = _WORD.match(text, pos)
            what = repr(word.group()) if word else repr(text[pos])
            if family is None:
                raise fail(f"expected a number at {what}", pos)
            raise fail(
                f"unexpected {what} after {text[lead:pos].strip()!r}: each part of a "
                "duration is a number and a unit",
                pos,
            )
        raw = num.group()
        if raw[0].isdigit():
            if not raw.isdigit():
                raise fail(
                    f"amounts are whole numbers, not {raw!r}",
                    pos,
                    "write 1h30min instead of 1.5h, 36h instead of 1.5 days",
                )
            amount: int | None = int(raw)
        else:
            amount = _cn_number(raw)
            if amount is None:
                raise fail(f"cannot read the number {raw!r}", pos, "write digits, e.g. 3个工作日")
        pos = num.end()
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            raise fail(f"a unit is missing after {raw!r}", pos)
        found = _match_unit(text, pos)
        if found is None:
            raise _unknown_unit(text, pos)
        unit, unit_end = found
        if family is not None and unit.family != family:
            raise fail(
                f"cannot mix {_FAMILY_NAMES[family]} ({first_term!r}) with "
                f"{_FAMILY_NAMES[unit.family]} ({text[term_start:unit_end]!r}) in one "
                "duration",
                term_start,
                "write one kind: 26h, 1 year 6 months, 4 work hours, 3 workdays",
            )
        if family is None:
            family, family_col, first_term = unit.family, term_start, text[term_start:unit_end]
        if unit.slot in seen:
            raise fail(f"{unit.slot} given twice", term_start, None)
        seen[unit.slot] = pos
        assert amount is not None
        totals[unit.target] += amount * unit.factor
        pos = unit_end

    assert family is not None  # the loop ran at least once: stripped is not empty
    too_long = fail(
        "duration too long",
        family_col,
        "the longest are 3660 days of elapsed or working time, 1000 workdays, 100 years",
    )
    if family in ("elapsed", "work_time"):
        if totals["seconds"] > _MAX_SECONDS:
            raise too_long
        if not totals["seconds"]:
            raise fail("a duration must be longer than zero", family_col)
        delta = dt.timedelta(seconds=totals["seconds"])
        if family == "elapsed":
            return Elapsed(delta)
        return WorkTime(delta)
    if family == "workdays":
        if totals["workdays"] > _MAX_WORKDAYS:
            raise too_long
        if not totals["workdays"]:
            raise fail("a duration must be longer than zero", family_col)
        return Workdays(totals["workdays"])
    if totals["months"] > _MAX_MONTHS or totals["days"] > _MAX_DAYS:
        raise too_long
    if not (totals["months"] or totals["days"]):
        raise fail("a duration must be longer than zero", family_col)
    return CalendarSpan(totals["months"], totals["days"])


def _match_unit(text: str, pos: int) -> tuple[_Unit, int] | None:
    for pattern, unit in _UNITS:
        m = pattern.match(text, pos)
        if m:
            return unit, m.end()
    return None


def _unknown_unit(text: str, pos: int) -> DurationError:
    # only a misspelt unit needs suggestions
    import difflib

    word_m = _WORD.match(text, pos)
    word = word_m.group() if word_m else text[pos]
    if word.lower() in ("m", "mo", "mon"):
        return DurationError(
            f"ambiguous unit {word!r}", pos, "write min for minutes or months for months", text
        )
    if word == "月":
        return DurationError(
            "'月' after a number reads as a month name (3月 = March)",
            pos,
            "write 3个月 for three months",
            text,
        )
    if word == "分":
        return DurationError("'分' alone is ambiguous", pos, "write 30分钟 for minutes", text)
    if word == "半":
        return DurationError(
            "'半' (half) is not a number here", pos, "write 30分钟 or 12小时", text
        )
    guess = difflib.get_close_matches(word.lower(), _KNOWN_WORDS, n=1, cutoff=0.6)
    hint = ACCEPTED_FORMS if not guess else f"did you mean '{guess[0]}'? {ACCEPTED_FORMS}"
    return DurationError(f"unknown unit {word!r}", pos, hint, text)
