"""Working calendars: China's holidays and make-up days, company overrides, working hours,
years the package does not cover, and other countries through ``holidays``."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import chinese_calendar
import holidays
import pytest
from pydantic import ValidationError

from core.time.calendars import CalendarDef, CalendarError, WorkingCalendar
from core.time.durations import parse_duration

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
H = dt.timedelta(hours=1)
MIN = dt.timedelta(minutes=1)


def at(*parts: int, tz: dt.tzinfo = SH) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=tz)


@pytest.fixture(scope="module")
def cn() -> WorkingCalendar:
    return WorkingCalendar(
        CalendarDef(country="CN", working_hours=("08:30-12:00", "13:00-17:30")), "Asia/Shanghai"
    )


def nth_package_workday_after(day: dt.date, n: int) -> dt.date:
    """The answer straight from chinesecalendar, to hold our result against."""
    while n:
        day += dt.timedelta(days=1)
        n -= chinese_calendar.is_workday(day)
    return day


# -- 24 h versus a working day ------------------------------------------------------------


def test_24h_reply_runs_through_the_weekend_but_a_workday_does_not(cn: WorkingCalendar) -> None:
    friday = at(2026, 11, 6, 10, 0)
    assert parse_duration("24h").add(friday, cn) == at(2026, 11, 7, 10, 0)  # Saturday
    assert parse_duration("1 workday").add(friday, cn) == at(2026, 11, 9, 10, 0)  # Monday
    assert parse_duration("8 work hours").add(friday, cn) == at(2026, 11, 9, 10, 0)


def test_three_working_days_tuesday_to_friday(cn: WorkingCalendar) -> None:
    assert cn.add_workdays(at(2026, 11, 3, 10, 0), 3) == at(2026, 11, 6, 10, 0)
    # the start day never counts, even when it is a day off: Saturday -> Wednesday
    assert cn.add_workdays(at(2026, 11, 7, 10, 0), 3) == at(2026, 11, 11, 10, 0)
    assert cn.add_workdays(at(2026, 11, 3, 10, 0), 0) == at(2026, 11, 3, 10, 0)
    with pytest.raises(ValueError, match="negative"):
        cn.add_workdays(at(2026, 11, 3, 10, 0), -1)


# -- National Day 2026 and its make-up days -------------------------------------------------


def test_three_working_days_across_national_day_2026(cn: WorkingCalendar) -> None:
    start = at(2026, 9, 30, 10, 0)
    due = parse_duration("3个工作日").add(start, cn)

    # what the package implies: the 3rd working day after 30 September
    expected_day = nth_package_workday_after(dt.date(2026, 9, 30), 3)
    assert due == dt.datetime.combine(expected_day, dt.time(10, 0), tzinfo=SH)
    # ... which is Saturday 10 October, a make-up working day (1–7 October off)
    assert due == at(2026, 10, 10, 10, 0)
    assert not chinese_calendar.is_holiday(dt.date(2026, 10, 10))

    why = cn.explain(start, due)
    assert why.workdays == 3
    assert why.business_time == 6.5 * H + 8 * H + 8 * H + 1.5 * H
    skipped = {d.date: d for d in why.skipped}
    assert sorted(skipped) == [dt.date(2026, 10, d) for d in range(1, 8)]
    assert {d.holiday for d in why.skipped} == {"National Day"}
    assert {d.holiday_zh for d in why.skipped} == {"国庆节"}
    assert skipped[dt.date(2026, 10, 3)].reason == "holiday"  # a Saturday, but the holiday names it
    assert skipped[dt.date(2026, 10, 7)].in_lieu  # the day off swapped for a make-up day
    [makeup] = why.makeup_workdays
    assert makeup.date == dt.date(2026, 10, 10)
    assert makeup.holiday == "National Day"
    text = str(why)
    assert "skipped 2026-10-01 Thu: National Day (国庆节)" in text
    assert (
        "counted 2026-10-10 Sat: make-up working day (调休上班) for National Day (国庆节)" in text
    )
    assert why.warnings == ()


def test_sunday_20_september_2026_is_a_make_up_working_day(cn: WorkingCalendar) -> None:
    info = cn.day_info(dt.date(2026, 9, 20))
    assert info.is_workday and info.reason == "makeup_workday" and info.holiday == "National Day"
    assert not cn.is_workday(dt.date(2026, 9, 19))  # the Saturday before stays off
    assert cn.add_workdays(at(2026, 9, 18, 10, 0), 1) == at(2026, 9, 20, 10, 0)
    # Mid-Autumn Festival 2026: Friday 25 September to Sunday 27
    assert cn.day_info(dt.date(2026, 9, 25)).holiday_zh == "中秋节"


def test_day_info_agrees_with_chinese_calendar_for_all_of_2026(cn: WorkingCalendar) -> None:
    day = dt.date(2026, 1, 1)
    while day.year == 2026:
        assert cn.is_workday(day) == chinese_calendar.is_workday(day), day
        day += dt.timedelta(days=1)


def test_an_aware_datetime_means_its_local_date(cn: WorkingCalendar) -> None:
    # 2026-09-30 17:00 UTC is 1 October 01:00 in Shanghai: National Day
    assert not cn.is_workday(dt.datetime(2026, 9, 30, 17, 0, tzinfo=dt.UTC))
    with pytest.raises(ValueError, match="aware"):
        cn.is_workday(dt.datetime(2026, 9, 30, 17, 0))  # noqa: DTZ001  # naive on purpose


# -- working hours --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "work", "due"),
    [
        ((2026, 11, 3, 10, 0), 4 * H, (2026, 11, 3, 15, 0)),  # lunch 12:00–13:00 skipped
        ((2026, 11, 3, 8, 30), 3.5 * H, (2026, 11, 3, 12, 0)),  # using up a period ends at its end
        (
            (2026, 11, 3, 12, 30),
            1 * H,
            (2026, 11, 3, 14, 0),
        ),  # from lunch: counting starts at 13:00
        ((2026, 11, 3, 7, 0), 30 * MIN, (2026, 11, 3, 9, 0)),  # before hours: starts at 08:30
        ((2026, 11, 3, 18, 0), 4 * H, (2026, 11, 4, 13, 30)),  # after hours: from 08:30 next day
        ((2026, 11, 6, 16, 30), 2 * H, (2026, 11, 9, 9, 30)),  # Friday -> Monday
        ((2026, 9, 30, 16, 30), 2 * H, (2026, 10, 8, 9, 30)),  # over National Day
        ((2026, 11, 3, 10, 0), 0 * H, (2026, 11, 3, 10, 0)),
    ],
)
def test_add_work_time(
    cn: WorkingCalendar, start: tuple[int, ...], work: dt.timedelta, due: tuple[int, ...]
) -> None:
    assert cn.add_work_time(at(*start), work) == at(*due)
    if work:
        assert cn.work_time_between(at(*start), at(*due)) == work


def test_work_time_between(cn: WorkingCalendar) -> None:
    assert cn.work_time_between(at(2026, 11, 3, 10, 0), at(2026, 11, 3, 15, 0)) == 4 * H
    assert cn.work_time_between(at(2026, 11, 3, 0, 0), at(2026, 11, 4, 0, 0)) == 8 * H
    assert cn.work_time_between(at(2026, 11, 2, 0, 0), at(2026, 11, 9, 0, 0)) == 40 * H
    assert cn.work_time_between(at(2026, 11, 3, 15, 0), at(2026, 11, 3, 10, 0)) == -4 * H
    assert cn.work_time_between(at(2026, 11, 7, 9, 0), at(2026, 11, 7, 17, 0)) == 0 * H  # Saturday
    # instants in another zone are the same instants
    assert (
        cn.work_time_between(at(2026, 11, 3, 2, 0, tz=dt.UTC), at(2026, 11, 3, 7, 0, tz=dt.UTC))
        == 4 * H
    )


def test_negative_work_time_is_refused(cn: WorkingCalendar) -> None:
    with pytest.raises(ValueError, match="negative"):
        cn.add_work_time(at(2026, 11, 3, 10, 0), -H)


def test_round_the_clock_hours() -> None:
    duty = WorkingCalendar(
        CalendarDef(country=None, working_hours=("00:00-24:00",), weekend=[]), "Asia/Shanghai"
    )
    assert duty.add_work_time(at(2026, 11, 7, 10, 0), 24 * H) == at(2026, 11, 8, 10, 0)
    assert [str(p) for p in duty.definition.working_hours] == ["00:00-24:00"]


# -- company overrides ----------------------------------------------------------------------


def test_company_extra_holiday_and_extra_workday() -> None:
    cal = WorkingCalendar(
        CalendarDef(
            extra_holidays={dt.date(2026, 11, 4): "公司年会"},
            extra_workdays=[dt.date(2026, 11, 14)],  # a Saturday
        ),
        "Asia/Shanghai",
    )
    # Tue 3rd + 3 working days skips Wednesday's company holiday: Thu, Fri, Mon
    due = cal.add_workdays(at(2026, 11, 3, 10, 0), 3)
    assert due == at(2026, 11, 9, 10, 0)
    why = cal.explain(at(2026, 11, 3, 10, 0), due)
    reasons = {d.date: (d.reason, d.holiday) for d in why.skipped}
    assert reasons[dt.date(2026, 11, 4)] == ("company_holiday", "公司年会")
    assert reasons[dt.date(2026, 11, 7)] == ("weekend", None)
    assert "skipped 2026-11-04 Wed: company extra holiday: 公司年会" in str(why)
    # Thu 12th + 2: Fri 13th and the company's working Saturday 14th
    assert cal.add_workdays(at(2026, 11, 12, 10, 0), 2) == at(2026, 11, 14, 10, 0)
    assert cal.add_work_time(at(2026, 11, 13, 17, 0), 1 * H) == at(2026, 11, 14, 9, 0)
    assert cal.day_info(dt.date(2026, 11, 14)).reason == "company_workday"


def test_company_overrides_win_over_the_package() -> None:
    cal = WorkingCalendar(
        CalendarDef(
            extra_workdays=[dt.date(2026, 10, 2)],  # the company works on a National Day holiday
            extra_holidays=[dt.date(2026, 10, 10)],  # and not on the make-up Saturday
        ),
        "Asia/Shanghai",
    )
    due = cal.add_workdays(at(2026, 9, 30, 10, 0), 3)
    assert due == at(2026, 10, 9, 10, 0)  # 2 Oct, 8 Oct, 9 Oct
    info = cal.day_info(dt.date(2026, 10, 2))
    assert (info.is_workday, info.reason, info.holiday) == (True, "company_workday", "National Day")
    why = cal.explain(at(2026, 9, 30, 10, 0), at(2026, 10, 12, 10, 0))
    assert [d.date for d in why.company_workdays] == [dt.date(2026, 10, 2)]
    assert "counted 2026-10-02 Fri: company extra working day (instead of National Day)" in str(why)
    assert not cal.is_workday(dt.date(2026, 10, 10))


def test_own_weekend_with_china() -> None:
    # a shop closed on Sundays only: ordinary Saturdays work, holidays still do not
    cal = WorkingCalendar(CalendarDef(weekend=["sun"]), "Asia/Shanghai")
    assert cal.is_workday(dt.date(2026, 11, 7))
    assert not cal.is_workday(dt.date(2026, 11, 8))
    assert not cal.is_workday(dt.date(2026, 10, 3))  # National Day, a Saturday
    assert cal.is_workday(dt.date(2026, 9, 20))  # make-up Sunday


# -- years the package does not cover -------------------------------------------------------


def test_uncovered_year_counts_weekdays_and_warns() -> None:
    cal = WorkingCalendar(CalendarDef(country="CN"), "Asia/Shanghai")
    covered = cal.covered_years
    # chinesecalendar, then the holidays package, which stops after 2100
    assert covered is not None and {2026, 2027, 2100} <= set(covered) and 2101 not in covered
    assert cal.warnings() == []
    # 3 October 2101 is a Monday of the National Day week: without data a working day
    assert cal.add_workdays(at(2101, 9, 30, 10, 0), 3) == at(2101, 10, 5, 10, 0)
    info = cal.day_info(dt.date(2101, 10, 3))
    assert info.is_workday and not info.covered
    assert not cal.is_workday(dt.date(2101, 10, 1))  # Saturday
    [warning] = cal.warnings()
    assert warning.startswith(
        f"chinesecalendar {_version('chinesecalendar')} and holidays {_version('holidays')} "
        "have no data for 2101; 2101 counted as Mon–Fri"
    )
    early, late = cal.coverage_warnings([2026, 2101, 1949])
    assert "have no data for 1949; 1949 counted as Mon–Fri" in early
    assert late == warning
    why = cal.explain(at(2101, 9, 30, 10, 0), at(2101, 10, 5, 10, 0))
    assert why.warnings == (warning,)
    assert "no holiday data" in str(why)


def test_uncovered_year_still_takes_company_overrides() -> None:
    cal = WorkingCalendar(
        CalendarDef(extra_holidays=[dt.date(2101, 10, d) for d in range(3, 8)]), "Asia/Shanghai"
    )
    assert cal.add_workdays(at(2101, 9, 30, 10, 0), 1) == at(2101, 10, 10, 10, 0)
    assert cal.warnings()  # still warned: the company list may be incomplete


# -- years after chinesecalendar: the holidays package ----------------------------------------


def spring_festival(year: int) -> list[dt.date]:
    """China's Spring Festival days off in ``year`` as the holidays package lists them."""
    cn = holidays.China(years=year, language="en_US")
    return sorted(d for d, name in cn.items() if "Spring Festival" in name or "Eve" in name)


def test_spring_festival_2027_is_not_working_time(cn: WorkingCalendar) -> None:
    with pytest.raises(NotImplementedError):  # chinesecalendar has no 2027
        chinese_calendar.is_workday(dt.date(2027, 2, 8))
    days = spring_festival(2027)
    assert len(days) >= 4 and days[0].month == 2, days  # Chinese New Year's Eve, then 春节
    assert days == [days[0] + dt.timedelta(days=i) for i in range(len(days))]  # one stretch
    for day in days:
        info = cn.day_info(day)
        assert not info.is_workday and info.reason == "holiday" and info.covered, info
        assert (info.source or "").startswith(f"holidays {_version('holidays')}"), info
        assert cn.working_periods(day) == ()
    # from 08:00 the day before to 08:00 the day after: only the day before counts (8 h)
    before = dt.datetime.combine(days[0] - dt.timedelta(days=1), dt.time(8), SH)
    after = dt.datetime.combine(days[-1] + dt.timedelta(days=1), dt.time(8), SH)
    assert cn.is_workday(before.date())
    assert cn.work_time_between(before, after) == 8 * H
    assert cn.add_work_time(before, 9 * H) == after + 1 * H + 30 * MIN  # 09:30 after it
    why = cn.explain(before, after)
    assert {d.date for d in why.skipped} == set(days) and why.warnings == ()
    line = next(x for x in why.lines() if x.startswith(f"skipped {days[1].isoformat()}"))
    assert "Spring Festival" in line and "春节" in line and "source holidays" in line, line
    assert cn.coverage_warnings([2026, 2027]) == [] and cn.warnings() == []


def test_the_source_of_each_day_is_shown(cn: WorkingCalendar) -> None:
    assert str(cn.day_info(dt.date(2026, 10, 1))).endswith(
        f"National Day (国庆节); source chinesecalendar {_version('chinesecalendar')}"
    )
    assert "source chinesecalendar" in str(cn.day_info(dt.date(2026, 10, 10)))  # make-up day
    assert "source" not in str(cn.day_info(dt.date(2026, 10, 17)))  # a plain weekend


def test_crossing_into_an_uncovered_year_does_not_crash(cn: WorkingCalendar) -> None:
    due = cn.add_work_time(at(2026, 12, 31, 10, 0), 40 * H)
    assert due.year == 2027
    assert cn.work_time_between(at(2026, 12, 31, 10, 0), due) == 40 * H


def _version(dist: str) -> str:
    import importlib.metadata

    return importlib.metadata.version(dist)


# -- other countries ------------------------------------------------------------------------


def test_germany_through_holidays() -> None:
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    de = WorkingCalendar(CalendarDef(country="DE", working_hours=["09:00-17:00"]), "Europe/Berlin")
    christmas = holidays.country_holidays("DE").get(dt.date(2026, 12, 25))
    assert christmas
    assert de.day_info(dt.date(2026, 12, 25)).holiday == christmas
    # Thursday 24 December + 1 working day: Fri 25 and Sat 26 (holidays), Sun -> Mon 28
    assert de.add_workdays(at(2026, 12, 24, 10, 0, tz=berlin), 1) == at(
        2026, 12, 28, 10, 0, tz=berlin
    )
    assert de.warnings() == []
    assert de.coverage_warnings([2026, 2200]) and "holidays" in de.coverage_warnings([2200])[0]


def test_german_state_holiday_needs_the_subdivision() -> None:
    epiphany = dt.date(2026, 1, 6)  # a Tuesday; a holiday in Bavaria, not in Berlin
    by = WorkingCalendar(CalendarDef(country="DE", subdivision="BY"), "Europe/Berlin")
    be = WorkingCalendar(CalendarDef(country="DE", subdivision="BE"), "Europe/Berlin")
    assert not by.is_workday(epiphany)
    assert be.is_workday(epiphany)


def test_united_states_thanksgiving() -> None:
    ny = zoneinfo.ZoneInfo("America/New_York")
    us = WorkingCalendar(
        CalendarDef(country="us", working_hours=["09:00-17:00"]), "America/New_York"
    )
    thanksgiving = dt.date(2026, 11, 26)
    assert us.day_info(thanksgiving).holiday == holidays.country_holidays("US").get(thanksgiving)
    assert us.add_workdays(at(2026, 11, 25, 10, 0, tz=ny), 1) == at(2026, 11, 27, 10, 0, tz=ny)
    assert us.add_work_time(at(2026, 11, 25, 16, 0, tz=ny), 2 * H) == at(2026, 11, 27, 10, 0, tz=ny)


def test_country_weekend_comes_from_holidays() -> None:
    sa = WorkingCalendar(CalendarDef(country="SA"), "Asia/Riyadh")
    assert sa.weekend == frozenset({4, 5})  # Friday and Saturday
    assert sa.is_workday(dt.date(2026, 11, 8))  # a Sunday


def test_no_country_means_weekdays_only() -> None:
    plain = WorkingCalendar(CalendarDef(country=None), "Asia/Shanghai")
    assert plain.is_workday(dt.date(2026, 10, 1))
    assert not plain.is_workday(dt.date(2026, 10, 10))
    assert plain.covered_years is None and plain.coverage_warnings([1900, 2500]) == []


# -- zones ----------------------------------------------------------------------------------


def test_calendar_zone_overrides_the_company_zone() -> None:
    cal = WorkingCalendar(CalendarDef(country=None, timezone="Europe/Berlin"), "Asia/Shanghai")
    assert cal.tz == zoneinfo.ZoneInfo("Europe/Berlin")
    due = cal.add_work_time(dt.datetime(2026, 11, 3, 8, 0, tzinfo=dt.UTC), 1 * H)  # 09:00 Berlin
    assert due == dt.datetime(2026, 11, 3, 10, 0, tzinfo=cal.tz)
    assert due.tzinfo == cal.tz


def test_working_periods_on_days_the_clock_changes() -> None:
    cal = WorkingCalendar(
        CalendarDef(country=None, weekend=["sat"], working_hours=["01:30-03:30"]), "Europe/Berlin"
    )

    def length(day: dt.date) -> dt.timedelta:
        return sum((b - a for a, b in cal.working_periods(day)), dt.timedelta(0))

    assert length(dt.date(2026, 10, 18)) == 2 * H
    assert length(dt.date(2026, 10, 25)) == 3 * H  # 02:00–03:00 happens twice
    assert length(dt.date(2026, 3, 29)) == 1 * H  # 02:00–03:00 never happens


# -- definitions ----------------------------------------------------------------------------


def test_calendar_def_normalises() -> None:
    d = CalendarDef(
        country="deu",
        working_hours=["13:00 - 17:30", "8:30-12:00"],
        weekend=["Saturday", 7],
        extra_holidays=["2026-11-04"],
    )
    assert d.country == "DEU"
    assert d.working_hours == ("08:30-12:00", "13:00-17:30")
    assert d.weekend == ("sat", "sun")
    assert d.extra_holidays == {dt.date(2026, 11, 4): None}
    assert CalendarDef(weekend=["周五", "周六"]).weekend == ("fri", "sat")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"country": "XX"}, "unknown country 'XX'"),
        ({"country": "DE", "subdivision": "ZZ"}, "unknown subdivision 'ZZ' of DE"),
        ({"subdivision": "BJ"}, "subdivision needs a country other than CN"),
        ({"working_hours": []}, "at least one period"),
        ({"working_hours": ["8-12"]}, "is not HH:MM-HH:MM"),
        ({"working_hours": ["17:30-08:30"]}, "ends before it starts"),
        ({"working_hours": ["08:00-25:00"]}, "impossible time"),
        ({"working_hours": ["08:00-12:00", "11:00-13:00"]}, "overlap"),
        ({"weekend": ["funday"]}, "unknown weekday 'funday'"),
        ({"weekend": [1, 2, 3, 4, 5, 6, 7]}, "leaves no working days"),
        ({"extra_holidays": ["2026-11-04"], "extra_workdays": ["2026-11-04"]}, "in both"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"holidays": []}, "Extra inputs are not permitted"),
    ],
)
def test_calendar_def_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CalendarDef(**kwargs)  # type: ignore[arg-type]  # wrong arguments are the point


def test_a_calendar_without_working_time_fails_cleanly() -> None:
    mondays = [dt.date(2026, 1, 5) + dt.timedelta(weeks=w) for w in range(120)]
    cal = WorkingCalendar(
        CalendarDef(country=None, weekend=[2, 3, 4, 5, 6, 7], extra_holidays=mondays),
        "Asia/Shanghai",
    )
    with pytest.raises(CalendarError, match="no working"):
        cal.add_work_time(at(2026, 1, 1, 10, 0), H)
    with pytest.raises(CalendarError, match="no working day"):
        cal.add_workdays(at(2026, 1, 1, 10, 0), 1)
