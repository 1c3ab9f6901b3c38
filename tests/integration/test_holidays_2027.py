"""China's 2027 holidays, after the last year of chinesecalendar: deadlines skip them (from
the holidays package, named as such), with no "no data for 2027" warning (K126) from
``kefu validate`` or on a deadline. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from click.testing import CliRunner

from core.cli import cli
from core.clock import TestClock
from core.storage.db import Database
from tests.helpers import service

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
COMPLAINT = {
    "channel": "phone",
    "customer_name": "张三",
    "phone": "13912345678",
    "details": "瓶盖漏酒",
    "category": "quality",
}


def test_a_deadline_over_spring_festival_2027_skips_it_without_warning(db: Database) -> None:
    svc = service(db, clock=TestClock(dt.datetime(2027, 2, 4, 10, 0, tzinfo=SH)))  # a Thursday
    try:
        wang = svc.actor("demo", "wang")
        cid = svc.open_case("demo", "complaint-reply", wang, COMPLAINT).case.id
        handling = {d.id: d for d in svc.deadlines("demo", cid)}["handling"]
        # 3 working days: not Fri 5 to Wed 10 February (除夕 and 春节), so 11, 12 and 15
        assert handling.due_at == dt.datetime(2027, 2, 15, 10, 0, tzinfo=SH)
        assert handling.warnings == []
        festival = [s for s in handling.skipped_days if "Spring Festival" in s]
        assert len(festival) >= 3 and all("source holidays" in s for s in festival), festival

        number = svc.get_case("demo", cid).number
        url = db.engine.url.render_as_string(hide_password=False)
        res = CliRunner().invoke(cli, ["deadlines", number, "--database", url])
        assert res.exit_code == 0, res.output
        assert "due 2027-02-15 10:00 Mon" in res.output
        assert "skipped 2027-02-08 Mon: Chinese New Year (Spring Festival) (春节)" in res.output
        assert "source holidays" in res.output and "warning:" not in res.output
    finally:
        svc.close()


def test_validate_no_longer_warns_k126_for_china() -> None:
    # rules/ and config/: the demo company on China's calendar, checked for this year and
    # the next (2027 while chinesecalendar stops at 2026)
    res = CliRunner().invoke(cli, ["validate"])
    assert res.exit_code == 0, res.output
    assert "K126" not in res.output and "no data for" not in res.output, res.output
