"""Reports a pack declares (``reports:``): the monthly service report of Q/FL2.0813-2020
§8.6 counted from the demo company's iatf-customer-service cases, on SQLite and
PostgreSQL — listed beside the plugins' reports, exported and drawn like them."""

from __future__ import annotations

import datetime as dt
import io
import re
import zoneinfo
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from openpyxl import load_workbook

from api.app import create_app
from api.auth import AuthSettings
from core.cases.reports import available, run_report
from core.cases.service import CaseService
from core.errors import InvalidInput, NotFound
from tests.helpers import PASSWORD

pytestmark = pytest.mark.service(logins=["sun", "wang"])

NAME = "iatf-customer-service.monthly_service"
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
COLUMNS = [
    "期间",
    "服务阶段",
    "受理",
    "质量信息",
    "重大质量问题",
    "一般质量问题",
    "结案",
    "月末未结",
    "现场服务",
    "走访",
    "备件补发申请",
]


def at(svc: CaseService, text: str) -> None:
    svc.clock.set(dt.datetime.fromisoformat(text).replace(tzinfo=SHANGHAI))


def opened(svc: CaseService, phase: str, info: str, **more: Any) -> tuple[int, int]:
    """A case opened by sales and registered; (id, version)."""
    wang = svc.actor("demo", "wang")
    fields = {
        "customer_name": "华东汽车",
        "channel": "phone",
        "service_phase": phase,
        "info_kind": info,
        "description": "顾客来电",
        **more,
    }
    case = svc.open_case("demo", "iatf-customer-service", wang, fields).case
    case = svc.act(
        "demo", case.id, "register", wang, {"customer_type": "oem", "file_checked": True}, 1
    ).case
    return case.id, case.version


def classify(svc: CaseService, cid: int, version: int, line_stop: bool) -> int:
    qian = svc.actor("demo", "qian")
    fields = {"found_at": "line", "found_on": "2026-10-05", "line_stop": line_stop}
    return svc.act(
        "demo", cid, "classify", qian, {**fields, "batch_issue": False}, version
    ).case.version


def test_the_monthly_service_report_counts_the_cases(svc: CaseService) -> None:
    li, wang = svc.actor("demo", "li"), svc.actor("demo", "wang")
    sun = svc.actor("demo", "sun")  # the market department: the project team of this company
    at(svc, "2026-10-05 10:00")
    a, va = opened(svc, "pre_sale", "service", service_kind="consultation")
    onsite = {"visited_on": "2026-10-06", "site": "总装厂", "engineer": "li"}
    onsite |= {"work": "install", "findings": "正常"}
    va = svc.act("demo", a, "report_onsite", li, {"onsite_reports": onsite}, va).case.version
    b, vb = opened(svc, "after_sale", "quality")
    classify(svc, b, vb, line_stop=False)  # general: stays open
    at(svc, "2026-11-03 10:00")
    c, vc = opened(svc, "after_sale", "quality")
    classify(svc, c, vc, line_stop=True)  # major
    va = svc.act("demo", a, "served", sun, {"service_result": "已报价"}, va).case.version
    svc.act("demo", a, "confirm_solved", wang, {"customer_solved": True}, va)

    result = run_report(svc, "demo", NAME, {"since": "2026-10", "until": "2026-11"})
    assert result.columns == COLUMNS
    rows = {(r[0], r[1]): r[2:] for r in result.rows}
    #                                 受理 质量 重大 一般 结案 未结 现场 走访 备件
    assert rows[("2026-10", "售前服务")] == [1, 0, 0, 0, 0, 1, 1, 0, 0]
    assert rows[("2026-10", "售中服务")] == [0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert rows[("2026-10", "售后服务")] == [1, 1, 0, 1, 0, 1, 0, 0, 0]
    assert rows[("2026-10", "合计")] == [2, 1, 0, 1, 0, 2, 1, 0, 0]
    assert rows[("2026-11", "售前服务")] == [0, 0, 0, 0, 1, 0, 0, 0, 0]
    assert rows[("2026-11", "售后服务")] == [1, 1, 1, 0, 0, 2, 0, 0, 0]
    assert rows[("2026-11", "合计")] == [1, 1, 1, 0, 1, 2, 0, 0, 0]
    assert [r[1] for r in result.rows[:4]] == ["售前服务", "售中服务", "售后服务", "合计"]
    assert "Q/JL081305-C" in result.notes[0]
    assert result.chart is not None
    assert result.chart.labels == ["2026-10", "2026-11"]
    assert result.chart.series["受理"] == [2.0, 1.0]

    # by default: from the month of the first case to the current month; English words
    later = run_report(svc, "demo", NAME, {"lang": "en"})
    assert later.columns[:3] == ["Period", "Service phase", "Received"]
    assert [r[0] for r in later.rows if r[1] == "Total"] == ["2026-10", "2026-11"]

    # a month without cases still shows the open ones carried over
    at(svc, "2026-12-01 09:00")
    december = run_report(svc, "demo", NAME, {"since": "2026-12"})
    assert [r[2:] for r in december.rows if r[1] == "合计"] == [[0, 0, 0, 0, 0, 2, 0, 0, 0]]


def test_bad_periods_are_refused_with_the_parameter_named(svc: CaseService) -> None:
    with pytest.raises(InvalidInput) as exc:
        run_report(svc, "demo", NAME, {"since": "2026-13"})
    assert exc.value.details["errors"] == {"since": "YYYY-MM"}
    with pytest.raises(InvalidInput):
        run_report(svc, "demo", NAME, {"since": "2026-11", "until": "2026-10"})
    with pytest.raises(InvalidInput):
        run_report(svc, "demo", NAME, {"since": "1990-01", "until": "2026-10"})
    with pytest.raises(NotFound):
        run_report(svc, "demo", "iatf-customer-service.no_such_report", {})


@pytest.fixture
def api(svc: CaseService) -> Iterator[Any]:
    app = create_app(svc, auth=AuthSettings(cookie_secure=False))

    def client(user: str) -> TestClient[Any]:
        c = TestClient(app)
        r = c.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return c

    yield client


def test_listed_run_exported_and_drawn_through_the_api(svc: CaseService, api: Any) -> None:
    at(svc, "2026-11-03 10:00")
    opened(svc, "in_sale", "service", service_kind="delivery")
    assert available(svc, "demo")[NAME].title == "月度服务报告 (Q/JL081305-C)"
    sun = api("sun")
    listed = {r["name"]: r for r in sun.get("/api/v1/reports").json()}
    assert listed[NAME]["procedure"] == "iatf-customer-service"
    assert listed[NAME]["plugin"] == ""
    assert listed["on-time"]["procedure"] is None  # the plugins' reports are still there
    body = sun.get(f"/api/v1/reports/{NAME}", params={"since": "2026-11"}).json()
    assert body["columns"] == COLUMNS
    assert [r[2] for r in body["rows"] if r[1] == "售中服务"] == [1]
    r = sun.get(f"/api/v1/reports/{NAME}/export.xlsx", params={"since": "2026-11"})
    assert r.status_code == 200, r.text
    sheet = load_workbook(io.BytesIO(r.content)).active
    assert [c.value for c in sheet[1]] == COLUMNS
    r = sun.get(f"/api/v1/reports/{NAME}/chart", params={"since": "2026-11"})
    assert r.status_code == 200 and r.text.lstrip().startswith("<svg")
    r = sun.get(f"/api/v1/reports/{NAME}", params={"since": "11/2026"})
    assert r.status_code == 422 and "since" in r.text
    assert sun.get("/api/v1/reports/iatf-customer-service.nothing").status_code == 404


def test_the_staff_pages_list_and_show_it(svc: CaseService) -> None:
    at(svc, "2026-11-03 10:00")
    opened(svc, "after_sale", "service", service_kind="visit")
    app = create_app(svc, auth=AuthSettings(cookie_secure=False))
    c = TestClient(app)
    token = re.search(r'name="_csrf" value="([^"]+)"', c.get("/web/login").text)
    assert token
    form = {"_csrf": token[1], "username": "sun", "password": PASSWORD, "next": "/web/reports"}
    assert c.post("/web/login", data=form, follow_redirects=False).status_code == 303
    assert f"/web/reports/{NAME}" in c.get("/web/reports").text
    page = c.get(f"/web/reports/{NAME}", params={"since": "2026-11"})
    assert page.status_code == 200
    assert "月度服务报告 (Q/JL081305-C)" in page.text and "售后服务" in page.text
    bad = c.get(f"/web/reports/{NAME}", params={"since": "Nov"})
    assert bad.status_code == 200 and "2026-11" in bad.text  # the problem, beside the form
