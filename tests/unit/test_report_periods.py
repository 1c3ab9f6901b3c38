"""The periods a pack's report counts in (``reports: {per: month | quarter | year}``)."""

from __future__ import annotations

import datetime as dt

from core.cases.reports import next_period, period_label, period_start


def test_periods_of_a_month_a_quarter_and_a_year() -> None:
    day = dt.date(2026, 11, 17)
    assert [period_start(day, p) for p in ("month", "quarter", "year")] == [
        dt.date(2026, 11, 1),
        dt.date(2026, 10, 1),
        dt.date(2026, 1, 1),
    ]
    assert next_period(dt.date(2026, 12, 1), "month") == dt.date(2027, 1, 1)
    assert next_period(dt.date(2026, 10, 1), "quarter") == dt.date(2027, 1, 1)
    assert next_period(dt.date(2026, 1, 1), "year") == dt.date(2027, 1, 1)
    assert [period_label(dt.date(2026, 10, 1), p) for p in ("month", "quarter", "year")] == [
        "2026-10",
        "2026-Q4",
        "2026",
    ]
