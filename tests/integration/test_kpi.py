"""The on-time KPI computed from cases' deadlines: the leak repair's 管网修漏及时率 98%
(seed 003 #15 二.3), on SQLite and PostgreSQL with the demo company."""

from __future__ import annotations

import datetime as dt

from core.cases.reports import run_report
from core.cases.service import CaseService
from core.errors import InvalidInput, NotFound
from tests.helpers import case_at_repair, hand_in_card


def test_the_on_time_rate_of_leak_repairs(svc: CaseService) -> None:
    wang, li = svc.actor("demo", "wang"), svc.actor("demo", "li")

    def leak(diameter: int, hours: float) -> None:
        cid = svc.open_case(
            "demo", "leak-repair", wang, {"location": "人民路 12 号", "pipe_diameter_mm": diameter}
        ).case.id
        svc.act("demo", cid, "water_stopped", li, {"water_stopped": True}, 1)
        svc.clock.advance(dt.timedelta(hours=hours))
        svc.act("demo", cid, "repaired", li, {"repair_notes": "更换管段"}, 2)

    leak(200, 20)  # ≤300 mm: 24 h — on time
    leak(200, 30)  # late
    leak(500, 40)  # 300–1000 mm: 48 h — on time
    leak(1200, 70)  # ≥1000 mm: 72 h — on time
    result = run_report(svc, "demo", "on-time", {"procedure": "leak-repair", "target": "98"})
    assert result.columns == ["月份", "时限", "按时", "超时", "及时率%", "目标%", "达标"]
    assert len(result.rows) >= 1
    met = sum(r[2] for r in result.rows)
    late = sum(r[3] for r in result.rows)
    assert (met, late) == (3, 1)
    assert all(r[6] == "否" for r in result.rows if r[3])  # a month with a late repair: <98%
    assert result.chart is not None and "目标" in result.chart.series


def test_the_kpi_reports_refuse_unknown_procedures(svc: CaseService) -> None:
    import pytest

    for name in ("on-time", "complaints-monthly"):
        with pytest.raises(NotFound):
            run_report(svc, "demo", name, {"procedure": "no-such\x00pack"})
    with pytest.raises(InvalidInput):
        run_report(svc, "demo", "on-time", {})
    with pytest.raises(InvalidInput):
        run_report(svc, "demo", "on-time", {"procedure": "leak-repair", "target": "lots"})


def test_survey_coverage_of_closed_repairs(svc: CaseService) -> None:
    wang, li = svc.actor("demo", "wang"), svc.actor("demo", "li")
    cid = case_at_repair(svc)
    svc.act(
        "demo", cid, "complete", li, {"hours_spent": 1, "result": "已修复", "resolved": True}, 3
    )
    v = hand_in_card(svc, cid, 4)
    svc.act("demo", cid, "confirm", wang, {"customer_confirmed": True}, v)
    svc.act(
        "demo", cid, "record_survey", wang, {"survey_channel": "phone", "satisfaction": 5}, v + 1
    )
    svc.act("demo", cid, "close", wang, {}, v + 2)
    second = case_at_repair(svc)
    svc.act(
        "demo", second, "complete", li, {"hours_spent": 1, "result": "已修复", "resolved": True}, 3
    )
    cancelled = svc.open_case(
        "demo",
        "repair-desk",
        wang,
        {
            "channel": "phone",
            "customer_name": "王五",
            "phone": "13900000000",
            "symptom": "重复报修",
        },
    ).case.id
    svc.act("demo", cancelled, "cancel", wang, {"cancel_reason": "重复"}, 1)
    params = {"procedure": "repair-desk", "action": "record_survey", "target": "100"}
    rows = run_report(svc, "demo", "coverage", params).rows
    assert [r[1:] for r in rows] == [[2, 1, 50.0, 100.0, "否"]]  # the cancelled one counts
    only_closed = run_report(svc, "demo", "coverage", {**params, "ended": "closed"}).rows
    assert [r[1:] for r in only_closed] == [[1, 1, 100.0, 100.0, "是"]]


def test_satisfaction_scores_from_marked_fields(svc: CaseService) -> None:
    wang, li = svc.actor("demo", "wang"), svc.actor("demo", "li")
    # overall, and the service aspect asked of two of the three (A 四.1)
    for score, service_score in ((5, 5), (4, None), (2, 1)):
        cid = case_at_repair(svc)
        svc.act(
            "demo", cid, "complete", li, {"hours_spent": 1, "result": "好", "resolved": True}, 3
        )
        v = hand_in_card(svc, cid, 4)
        svc.act("demo", cid, "confirm", wang, {"customer_confirmed": True}, v)
        answers = {"survey_channel": "phone", "satisfaction": score}
        if service_score is not None:
            answers["service_score"] = service_score
        svc.act("demo", cid, "record_survey", wang, answers, v + 1)
    result = run_report(svc, "demo", "satisfaction-scores", {"procedure": "repair-desk"})
    assert [r[2:] for r in result.rows] == [
        ["满意度(1-5)", 3, 3.67, "1–5", 66.7],
        ["维修服务评价(1-5)", 2, 3.0, "1–5", 50.0],
    ]
    assert result.chart is not None and list(result.chart.series.values()) == [[3.67], [3.0]]
