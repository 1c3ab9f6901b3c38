"""A company moves or switches off a pack's schedule (procedures.<pack>.schedules in its config).

complaint-statistics (QP §5.1.3.2) opens the monthly statistics case on the 1st at 09:00;
a company may prefer the 3rd at 14:30, or not want it at all.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path

from sqlalchemy import select

from core.clock import TestClock
from core.runtime.worker import run_until
from core.spec.catalog import ROOT
from core.storage import schema as t
from core.storage.db import Database
from tests.helpers import service

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
T0 = dt.datetime(2026, 11, 10, 9, 0, tzinfo=SHANGHAI)


def config(tmp_path: Path, override: str) -> Path:
    out = tmp_path / "config"
    out.mkdir()
    text = (ROOT / "config" / "demo.yaml").read_text(encoding="utf-8")
    marker = '    numbering: "TJ-{yyyy}{mm}-{seq:02}"\n'
    assert marker in text
    (out / "demo.yaml").write_text(text.replace(marker, marker + override), encoding="utf-8")
    return out


def statistics_cases(db: Database) -> list[tuple[str, dt.datetime]]:
    """The demo company's statistics cases (config/ has other companies running them)."""
    with db.read() as conn:
        rows = conn.execute(
            select(t.case.c.number, t.case.c.created_at)
            .join(t.company, t.company.c.id == t.case.c.company_id)
            .where(t.case.c.procedure == "complaint-statistics", t.company.c.key == "demo")
            .order_by(t.case.c.id)
        ).all()
    return [(r.number, r.created_at.astimezone(SHANGHAI)) for r in rows]


def test_a_company_moves_the_monthly_statistics(db: Database, tmp_path: Path) -> None:
    clock = TestClock(T0)
    svc = service(
        db,
        config=config(tmp_path, '    schedules:\n      monthly: {on: 3, at: "14:30"}\n'),
        clock=clock,
    )
    run_until(svc, dt.datetime(2027, 1, 4, tzinfo=SHANGHAI))
    opened = statistics_cases(db)
    assert [at for _, at in opened] == [
        dt.datetime(2026, 12, 3, 14, 30, tzinfo=SHANGHAI),
        dt.datetime(2027, 1, 3, 14, 30, tzinfo=SHANGHAI),
    ]
    svc.close()


def test_a_company_switches_the_schedule_off(db: Database, tmp_path: Path) -> None:
    clock = TestClock(T0)
    svc = service(
        db,
        config=config(tmp_path, "    schedules:\n      monthly: {enabled: false}\n"),
        clock=clock,
    )
    run_until(svc, dt.datetime(2027, 3, 2, tzinfo=SHANGHAI))
    assert statistics_cases(db) == []
    svc.close()


def test_without_an_override_it_runs_on_the_first_at_nine(db: Database, tmp_path: Path) -> None:
    svc = service(db, clock=TestClock(T0))
    run_until(svc, dt.datetime(2027, 1, 2, tzinfo=SHANGHAI))
    assert [at for _, at in statistics_cases(db)] == [
        dt.datetime(2026, 12, 1, 9, 0, tzinfo=SHANGHAI),
        dt.datetime(2027, 1, 1, 9, 0, tzinfo=SHANGHAI),
    ]
    svc.close()
