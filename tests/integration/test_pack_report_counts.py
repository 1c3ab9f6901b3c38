"""A pack report (``reports:``) per quarter, one row per value of a boolean field, with
a condition on a derived value (``count(items) >= 2``), a step and an action counted —
on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path
from typing import Any

from core.cases.reports import run_report
from tests.helpers import service

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


MEASURE = """\
kefu: 1
procedure: measured
title: 计数
roles: {staff: {label: 客服}}
fields:
  kind: {type: choice, label: 类别, choices: {a: 甲, b: 乙}}
  done: {type: boolean, label: 已完成}
  items:
    type: list
    label: 明细
    of: {what: {type: text, label: 内容}}
open: {role: staff, ask: [kind, done, items]}
start: open
steps:
  open:
    label: 处理
    role: staff
    actions:
      close: {label: 结案, to: closed}
  closed: {label: 已结案, final: true}
reports:
  quarterly:
    title: 季度统计
    per: quarter
    by: done
    columns:
      opened: {label: 受理, count: opened}
      many: {label: 多项, count: opened, when: count(items) >= 2}
      closed_a: {label: 甲类结案, count: closed, when: kind == "a" and step == "closed"}
      closings: {label: 结案次数, count: {action: close}}
"""


def test_a_quarterly_report_by_a_boolean_with_a_derived_condition(db: Any, tmp_path: Path) -> None:
    (tmp_path / "rules" / "measured").mkdir(parents=True)
    (tmp_path / "rules" / "measured" / "procedure.yaml").write_text(MEASURE, encoding="utf-8")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "m.yaml").write_text(
        "kefu: 1\ncompany: m\nname: M\npeople: {li: {name: 李, roles: [staff]}}\n"
        "procedures: {measured: {}}\n",
        encoding="utf-8",
    )
    svc = service(db, rules=tmp_path / "rules", config=tmp_path / "config")
    try:
        li = svc.actor("m", "li")
        svc.clock.set(dt.datetime(2026, 8, 20, 10, tzinfo=SHANGHAI))
        two = [{"what": "x"}, {"what": "y"}]
        first = svc.open_case("m", "measured", li, {"kind": "a", "done": True, "items": two})
        svc.open_case("m", "measured", li, {"kind": "b", "items": [{"what": "x"}]})
        svc.clock.set(dt.datetime(2026, 11, 3, 10, tzinfo=SHANGHAI))
        svc.act("m", first.case.id, "close", li, {}, 1)
        svc.open_case("m", "measured", li, {"kind": "a", "done": False, "items": two})
        result = run_report(svc, "m", "measured.quarterly", {"since": "2026-07"})
    finally:
        svc.close()
    assert result.columns == ["期间", "已完成", "受理", "多项", "甲类结案", "结案次数"]
    assert result.rows == [
        ["2026-Q3", "是", 1, 1, 0, 0],
        ["2026-Q3", "否", 0, 0, 0, 0],
        ["2026-Q3", "—", 1, 0, 0, 0],
        ["2026-Q3", "合计", 2, 1, 0, 0],
        ["2026-Q4", "是", 0, 0, 1, 1],
        ["2026-Q4", "否", 1, 1, 0, 0],
        ["2026-Q4", "合计", 1, 1, 1, 1],
    ]
