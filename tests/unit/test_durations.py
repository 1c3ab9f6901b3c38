"""Durations written in rule files: the parse table, the errors, and what each kind adds."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from core.time.calendars import CalendarDef, WorkingCalendar
from core.time.durations import (
    CalendarSpan,
    DayEnd,
    Duration,
    DurationError,
    Elapsed,
    Workdays,
    WorkTime,
    parse_duration,
)

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
H = dt.timedelta(hours=1)
MIN = dt.timedelta(minutes=1)


@pytest.mark.parametrize(
    ("text", "expected", "canonical"),
    [
        # elapsed (wall-clock) time
        ("24h", Elapsed(24 * H), "24h"),
        ("24 h", Elapsed(24 * H), "24h"),
        ("24 hours", Elapsed(24 * H), "24h"),
        ("1 hour", Elapsed(H), "1h"),
        ("30min", Elapsed(30 * MIN), "30min"),
        ("30 minutes", Elapsed(30 * MIN), "30min"),
        ("90 s", Elapsed(dt.timedelta(seconds=90)), "1min30s"),
        ("1h30min", Elapsed(90 * MIN), "1h30min"),
        ("1h 30min", Elapsed(90 * MIN), "1h30min"),
        ("  72H  ", Elapsed(72 * H), "72h"),
        ("24小时", Elapsed(24 * H), "24h"),
        ("24 小時", Elapsed(24 * H), "24h"),
        ("二十四小时", Elapsed(24 * H), "24h"),
        ("2个钟头", Elapsed(2 * H), "2h"),
        ("30分钟", Elapsed(30 * MIN), "30min"),
        ("１５分钟", Elapsed(15 * MIN), "15min"),  # full-width digits, as IMEs type them
        # working time
        ("4 work hours", WorkTime(4 * H), "4 work hours"),
        ("1 working hour", WorkTime(H), "1 work hour"),
        ("8 business hours", WorkTime(8 * H), "8 work hours"),
        ("30 work minutes", WorkTime(30 * MIN), "30 work minutes"),
        ("1 work hour 30 work minutes", WorkTime(90 * MIN), "1 work hour 30 work minutes"),
        ("4个工作小时", WorkTime(4 * H), "4 work hours"),
        # working days
        ("3 workdays", Workdays(3), "3 workdays"),
        ("1 workday", Workdays(1), "1 workday"),
        ("3 working days", Workdays(3), "3 workdays"),
        ("7 business days", Workdays(7), "7 workdays"),
        ("3 Work Days", Workdays(3), "3 workdays"),
        ("3个工作日", Workdays(3), "3 workdays"),
        ("三個工作日", Workdays(3), "3 workdays"),
        ("兩個工作日", Workdays(2), "2 workdays"),
        ("七个工作日", Workdays(7), "7 workdays"),
        # calendar time
        ("3 months", CalendarSpan(months=3), "3 months"),
        ("1 month", CalendarSpan(months=1), "1 month"),
        ("2 weeks", CalendarSpan(days=14), "2 weeks"),
        ("1 year", CalendarSpan(months=12), "1 year"),
        ("1 year 6 months", CalendarSpan(months=18), "18 months"),
        ("10 days", CalendarSpan(days=10), "10 days"),
        ("3d", CalendarSpan(days=3), "3 days"),
        ("3个月", CalendarSpan(months=3), "3 months"),
        ("三個月", CalendarSpan(months=3), "3 months"),
        ("3天", CalendarSpan(days=3), "3 days"),
        ("十日", CalendarSpan(days=10), "10 days"),
        ("十五天", CalendarSpan(days=15), "15 days"),
        ("两周", CalendarSpan(days=14), "2 weeks"),
        ("1个星期", CalendarSpan(days=7), "1 week"),
        ("1年", CalendarSpan(months=12), "1 year"),
        # end of a local calendar day
        ("same day", DayEnd(0), "same day"),
        ("Same  Day", DayEnd(0), "same day"),
        ("end of day", DayEnd(0), "same day"),
        ("当天", DayEnd(0), "same day"),
        ("當日", DayEnd(0), "same day"),
        ("next day", DayEnd(1), "next day"),
        ("次日", DayEnd(1), "next day"),
    ],
)
def test_parse_table(text: str, expected: Duration, canonical: str) -> None:
    parsed = parse_duration(text)
    assert parsed == expected
    assert str(parsed) == canonical
    assert parse_duration(canonical) == parsed


@pytest.mark.parametrize(
    ("text", "message", "col"),
    [
        ("", "empty duration", 0),
        ("   ", "empty duration", 0),
        ("24", "a unit is missing after '24'", 2),
        ("h", "expected a number at 'h'", 0),
        ("hours 24", "expected a number at 'hours'", 0),
        ("1.5h", "amounts are whole numbers, not '1.5'", 0),
        ("3m", "ambiguous unit 'm'", 1),
        ("3月", "reads as a month name", 1),
        ("30分", "'分' alone is ambiguous", 2),
        ("半小时", "'半' (half) is not a number here", 0),
        ("3 hurs", "unknown unit 'hurs'", 2),
        ("3 fortnights", "unknown unit 'fortnights'", 2),
        ("1h 2h", "hours given twice", 3),
        ("1 day 2h", "cannot mix calendar time ('1 day') with elapsed time ('2h')", 6),
        ("3 workdays 2 work hours", "cannot mix working days", 11),
        ("3 days later", "unexpected 'later' after '3 days'", 7),
        ("1h, 30min", "unexpected ',' after '1h'", 2),
        ("0h", "must be longer than zero", 0),
        ("0 workdays", "must be longer than zero", 0),
        ("二三天", "cannot read the number '二三'", 0),
        ("5000 workdays", "duration too long", 0),
        ("200 years", "duration too long", 0),
        ("  3 hurs", "unknown unit 'hurs'", 4),  # columns count the leading spaces
    ],
)
def test_parse_errors(text: str, message: str, col: int) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(text)
    err = info.value
    assert message in err.message
    assert err.col == col
    assert isinstance(err, ValueError)  # pydantic reports it as a field error


def test_error_names_accepted_forms_and_column() -> None:
    with pytest.raises(DurationError) as info:
        parse_duration("3 hurs")
    text = str(info.value)
    assert "did you mean 'hours'?" in text
    assert "column 3 of '3 hurs'" in text
    for form in ("24h", "4 work hours", "3 workdays", "3 months", "same day", "3个工作日"):
        assert form in text


def test_not_a_string() -> None:
    with pytest.raises(DurationError, match="expected a duration text"):
        parse_duration(24)  # type: ignore[arg-type]  # what YAML gives for `sla: 24`


def test_constructors_refuse_nonsense() -> None:
    for make in (
        lambda: Elapsed(dt.timedelta(0)),
        lambda: WorkTime(dt.timedelta(seconds=30)),
        lambda: Workdays(0),
        lambda: CalendarSpan(),
        lambda: DayEnd(2),  # type: ignore[arg-type]  # a value outside the type, on purpose
    ):
        with pytest.raises(ValueError):
            make()


def test_pydantic_field() -> None:
    class Step(BaseModel):
        sla: Duration
        reply: WorkTime | None = None

    step = Step(sla="3个工作日", reply="4 work hours")
    assert step.sla == Workdays(3)
    assert step.model_dump_json() == '{"sla":"3 workdays","reply":"4 work hours"}'
    assert Step.model_json_schema()["properties"]["sla"]["type"] == "string"
    with pytest.raises(ValidationError, match="unknown unit 'hurs'"):
        Step(sla="3 hurs")
    with pytest.raises(ValidationError, match="expected working time"):
        Step(sla="3 workdays", reply="24h")
    assert Duration.parse("24h") == Elapsed(24 * H)
    with pytest.raises(DurationError, match="expected working days"):
        Workdays.parse("3 months")


# -- what each kind adds ------------------------------------------------------------------


@pytest.fixture(scope="module")
def cn() -> WorkingCalendar:
    return WorkingCalendar(CalendarDef(country="CN"), "Asia/Shanghai")


def test_elapsed_counts_days_off(cn: WorkingCalendar) -> None:
    friday = dt.datetime(2026, 11, 6, 10, 0, tzinfo=SH)
    assert parse_duration("24h").add(friday, cn) == dt.datetime(2026, 11, 7, 10, 0, tzinfo=SH)


def test_results_are_in_the_calendar_zone(cn: WorkingCalendar) -> None:
    start_utc = dt.datetime(2026, 11, 6, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai
    for text in ("24h", "4 work hours", "3 workdays", "3 months", "same day"):
        due = parse_duration(text).add(start_utc, cn)
        assert due.tzinfo == SH, text


def test_naive_start_is_refused(cn: WorkingCalendar) -> None:
    for text in ("24h", "4 work hours", "3 workdays", "3 months", "same day"):
        with pytest.raises(ValueError, match="aware"):
            parse_duration(text).add(dt.datetime(2026, 11, 6, 10, 0), cn)  # noqa: DTZ001  # naive on purpose


def test_elapsed_is_real_time_across_dst() -> None:
    berlin = WorkingCalendar(CalendarDef(country="DE"), "Europe/Berlin")
    tz = berlin.tz
    before = dt.datetime(2026, 10, 24, 12, 0, tzinfo=tz)  # CEST; clocks go back on the 25th
    due = parse_duration("24h").add(before, berlin)
    # (aware datetimes in one zone subtract as wall-clock times: compare in UTC)
    assert due.astimezone(dt.UTC) - before.astimezone(dt.UTC) == 24 * H
    assert (due.date(), due.time(), due.utcoffset()) == (dt.date(2026, 10, 25), dt.time(11, 0), H)
    # a calendar day keeps the clock time instead
    day_later = parse_duration("1 day").add(before, berlin)
    assert (day_later.date(), day_later.time()) == (dt.date(2026, 10, 25), dt.time(12, 0))
    assert day_later.astimezone(dt.UTC) - before.astimezone(dt.UTC) == 25 * H


@pytest.mark.parametrize(
    ("start", "text", "due"),
    [
        ((2026, 1, 31, 9, 0), "1 month", (2026, 2, 28, 9, 0)),
        ((2028, 1, 31, 9, 0), "1 month", (2028, 2, 29, 9, 0)),
        ((2026, 8, 31, 9, 0), "3 months", (2026, 11, 30, 9, 0)),
        ((2026, 9, 30, 9, 0), "3个月", (2026, 12, 30, 9, 0)),
        ((2026, 2, 28, 9, 0), "1 year", (2027, 2, 28, 9, 0)),
        ((2026, 9, 30, 9, 0), "2 weeks", (2026, 10, 14, 9, 0)),
        ((2026, 9, 30, 9, 0), "1 month 1 day", (2026, 10, 31, 9, 0)),
    ],
)
def test_calendar_span(
    cn: WorkingCalendar, start: tuple[int, ...], text: str, due: tuple[int, ...]
) -> None:
    assert parse_duration(text).add(dt.datetime(*start, tzinfo=SH), cn) == dt.datetime(
        *due, tzinfo=SH
    )


def test_same_day_and_next_day_end_in_the_company_zone(cn: WorkingCalendar) -> None:
    afternoon = dt.datetime(2026, 9, 30, 15, 0, tzinfo=SH)
    assert parse_duration("same day").add(afternoon, cn) == dt.datetime(
        2026, 10, 1, 0, 0, tzinfo=SH
    )
    assert parse_duration("次日").add(afternoon, cn) == dt.datetime(2026, 10, 2, 0, 0, tzinfo=SH)
    # 20:00 UTC on the 30th is already 1 October in Shanghai
    late_utc = dt.datetime(2026, 9, 30, 20, 0, tzinfo=dt.UTC)
    assert parse_duration("当天").add(late_utc, cn) == dt.datetime(2026, 10, 2, 0, 0, tzinfo=SH)


def test_work_kinds_delegate_to_the_calendar(cn: WorkingCalendar) -> None:
    tuesday = dt.datetime(2026, 11, 3, 10, 0, tzinfo=SH)
    assert parse_duration("3 workdays").add(tuesday, cn) == dt.datetime(
        2026, 11, 6, 10, 0, tzinfo=SH
    )
    assert parse_duration("4 work hours").add(tuesday, cn) == dt.datetime(
        2026, 11, 3, 15, 0, tzinfo=SH
    )


_durations = st.one_of(
    st.builds(Elapsed, st.integers(1, 10**7).map(lambda s: dt.timedelta(seconds=s))),
    st.builds(WorkTime, st.integers(1, 10**5).map(lambda m: dt.timedelta(minutes=m))),
    st.builds(Workdays, st.integers(1, 1000)),
    st.builds(CalendarSpan, st.integers(0, 1200), st.integers(1, 36600)),
    st.builds(CalendarSpan, st.integers(1, 1200), st.just(0)),
    st.sampled_from([DayEnd(0), DayEnd(1)]),
)


@given(_durations)
def test_canonical_text_round_trips(duration: Duration) -> None:
    assert parse_duration(str(duration)) == duration
