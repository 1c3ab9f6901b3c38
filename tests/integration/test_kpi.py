"""The on-time KPI computed from cases' deadlines: the leak repair's 管网修漏及时率 98%
(seed 003 #15 二.3), on SQLite and PostgreSQL with the demo company."""

from __future__ import annotations

import datetime as dt

from core.cases.reports import run_report
from core.cases.service import CaseService
from core.errors import InvalidInput, NotFound
from core.runtime.plugins import installed
from core.spec.loading import load_company, load_pack
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


def test_the_statistics_case_counts_what_the_monthly_report_counts(svc: CaseService) -> None:
    """QP §5.1.3.2: the monthly statistics case holds the figures of the month's complaints
    — the same figures as the complaints-monthly report — and nobody types them in; a
    complaint of another company or another month is not among them."""
    wang = svc.actor("demo", "wang")
    svc.clock.set(dt.datetime(2026, 11, 30, 15, 59, tzinfo=dt.UTC))  # 23:59 in Shanghai
    for content, urgency, customer in [
        ("quality", "high", "华东机电"),
        ("quality", "low", "华东机电"),
        ("price", "medium", "南方物流"),
    ]:
        fields = {"customer_name": customer, "content": content, "urgency": urgency}
        svc.open_case("demo", "qp-complaint", wang, {**fields, "description": "x"})
    svc.clock.advance(dt.timedelta(minutes=2))  # 1 December in Shanghai, still 30 Nov in UTC
    svc.open_case(
        "demo",
        "qp-complaint",
        wang,
        {"customer_name": "晚到", "content": "quality", "urgency": "high", "description": "x"},
    )
    stats = svc.open_case("demo", "complaint-statistics", wang, {"period": "2026-11"}).case
    assert stats.fields["total"] == 3
    assert [{k: v for k, v in item.items() if k != "id"} for item in stats.fields["breakdown"]] == [
        {"value": "quality", "label": "产品质量", "cases": 2, "high": 1, "medium": 0, "low": 1},
        {"value": "price", "label": "价格问题", "cases": 1, "high": 0, "medium": 1, "low": 0},
    ]
    assert [(i["value"], i["cases"]) for i in stats.fields["by_customer"]] == [
        ("华东机电", 2),
        ("南方物流", 1),
    ]
    report = run_report(svc, "demo", "complaints-monthly", {"since": "2026-11", "until": "2026-11"})
    assert sorted((r[1], r[2], r[3], r[4], r[5]) for r in report.rows) == [
        ("产品质量", 1, 0, 1, 2),
        ("价格问题", 0, 1, 0, 1),
    ]
    counted = [e for e in svc.journal("demo", stats.id) if e["kind"] == "counted"]
    assert counted[0]["data"] == {
        "procedure": "qp-complaint",
        "period": "2026-11",
        "since": "2026-11-01",
        "until": "2026-11-30",
        "cases": 3,
        "groups": 2,
    }


def test_count_cases_arguments_are_checked_where_they_are_written(tmp_path) -> None:
    pack = tmp_path / "tally" / "procedure.yaml"
    pack.parent.mkdir()
    pack.write_text(
        """\
kefu: 1
procedure: tally
title: 统计
roles:
  sales: {label: 销售}
fields:
  period: {type: date, label: 月份}
  total: {type: text, label: 合计}
  rows:
    type: list
    label: 明细
    of:
      value: {type: text, label: 值}
open: {role: sales, ask: [period]}
start: done
steps:
  done: {label: 完成, final: true}
rules:
  - id: count
    then:
      - count_cases: {procedure: qp-complaint, period: period, total: total,
                      into: rows, by: content}
      - count_cases: {procedure: qp-complaint, period: period, into: rows}
""",
        encoding="utf-8",
    )
    lp, diags = load_pack(pack.parent, extensions=installed())
    got = {(d.line, d.code) for d in diags}
    text = "\n".join(d.format() for d in diags)
    assert (21, "K111") in got and "'period' is a date, not a text" in text, text
    assert "'total' is a text, not an integer" in text, text
    assert "the items of 'rows' have no field 'cases'" in text, text
    assert (22, "K106") in got, text  # the items of 'rows' have no 'cases'
    assert (23, "K110") in got and "go together" in text, text  # into: without by:
    # a company must run the counted procedure (K114), as it must run linked ones
    ok = tmp_path / "ok" / "procedure.yaml"
    ok.parent.mkdir()
    ok.write_text(
        pack.read_text(encoding="utf-8")
        .replace("tally", "ok")
        .replace("type: date", "type: text")
        .replace("{type: text, label: 合计}", "{type: integer, label: 合计}")
        .replace("      - count_cases: {procedure: qp-complaint, period: period, into: rows}\n", "")
        .replace("    of:\n", "    of:\n      cases: {type: integer, label: 数}\n"),
        encoding="utf-8",
    )
    lp, diags = load_pack(ok.parent, extensions=installed())
    assert lp is not None and not diags.errors, [d.format() for d in diags]
    company = tmp_path / "co.yaml"
    company.write_text(
        "kefu: 1\ncompany: co\nname: 公司\nroles:\n  sales: {people: [a]}\n"
        "people:\n  a: {name: A}\nprocedures:\n  ok: {}\n",
        encoding="utf-8",
    )
    _, diags = load_company(company, {lp.key: lp}, extensions=installed())
    assert any(
        d.code == "K114" and "names the procedure 'qp-complaint' (count_cases)" in d.message
        for d in diags
    ), [d.format() for d in diags]
