"""QP/XX-A-2021 §5.1.3.3 "谁投诉谁关闭" through the customer portal, on SQLite and
PostgreSQL with the demo company: three months after sales answered, sales sends the
original complainant a one-time link; the complainant (no account) says whether the
problem is solved, and only that closes the case. The scenarios in rules/qp-complaint test
the procedure; this checks what the complainant sees and does."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from api import portal
from api.app import create_app
from api.auth import AuthSettings
from core.cases.service import CaseService
from core.runtime import worker
from core.runtime.plugins import installed
from core.spec.loading import load_company, load_pack

ROOT = Path(__file__).resolve().parents[2]


def csrf_of(page: str) -> str:
    found = re.search(r'name="_csrf" value="([^"]+)"', page)
    assert found, "no CSRF field on the page"
    return found.group(1)


def at_survey(svc: CaseService) -> int:
    """A demo complaint walked to the survey step: intake → form → signed → carried out →
    answered → three months of callbacks."""
    wang, li, qian = (svc.actor("demo", n) for n in ("wang", "li", "qian"))
    case = svc.open_case(
        "demo",
        "qp-complaint",
        wang,
        {
            "customer_name": "华东机电",
            "contact": "周工",
            "email": "zhou@example.com",
            "content": "quality",
            "urgency": "high",
            "description": "批次轴承异响",
        },
    ).case
    steps = [
        (wang, "organise", {"responsible_dept": "维修部"}),
        (li, "submit_form", {"cause": "润滑不足", "corrective_action": "增加检验"}),
        (qian, "approve", {"review_comment": "同意", "tracker": "qian"}),
        (qian, "implemented", {"implementation_notes": "已落实"}),
        (wang, "explained", {"explanation": "已说明"}),
    ]
    steps[1][2]["completion_date"] = (svc.clock.now() + dt.timedelta(days=20)).date().isoformat()
    for actor, action, fields in steps:
        case = svc.act("demo", case.id, action, actor, fields, case.version).case
    assert case.step == "follow_up"
    svc.clock.set(svc.clock.now() + dt.timedelta(days=93))
    worker.run_due(svc)
    assert svc.get_case("demo", case.id).step == "survey"
    return case.id


def test_the_complainant_closes_the_complaint_through_a_one_time_link(svc: CaseService) -> None:
    cid = at_survey(svc)
    wang = svc.actor("demo", "wang")
    view = svc.get_case("demo", cid)
    svc.act("demo", cid, "invite_complainant", wang, {}, view.version)
    (msg,) = [m for m in svc.outbox("demo", cid) if m["template"] == "portal.link"]
    assert msg["payload"]["address"] == "zhou@example.com" and msg["recipient"] == "customer"
    link = msg["payload"]["link"].split("8000", 1)[1]
    assert link.startswith(f"/portal/demo/t/{view.number}/")
    app = create_app(svc, auth=AuthSettings(cookie_secure=False))
    c: TestClient[Any] = TestClient(app)
    r = c.get(link, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/portal/demo/case"
    page = c.get("/portal/demo/case")
    assert page.status_code == 200
    assert "f.survey_satisfied" in page.text and "f.survey_comment" in page.text
    assert "f.survey_person" not in page.text  # the staff's form is not the complainant's
    token = csrf_of(page.text)
    # staff actions are not the link's: the complainant cannot record a phone survey
    refused = c.post("/portal/demo/case/record_survey", data={"_csrf": token})
    assert refused.status_code == 401
    r = c.post(
        "/portal/demo/case/complainant_closes",
        data={"_csrf": token, "f.survey_satisfied": "true", "f.survey_comment": "已解决"},
    )
    assert r.status_code == 200
    closed = svc.get_case("demo", cid)
    assert closed.status == "closed" and closed.fields["survey_channel"] == "link"
    last = [e for e in svc.journal("demo", cid) if e["kind"] == "action"][-1]
    assert (last["action"], last["actor"]) == ("complainant_closes", portal.PORTAL_ACTOR)
    assert c.get(link, follow_redirects=False).status_code == 410  # used once


def test_a_complainant_who_is_not_satisfied_sends_it_back(svc: CaseService) -> None:
    cid = at_survey(svc)
    wang = svc.actor("demo", "wang")
    svc.act("demo", cid, "invite_complainant", wang, {}, svc.get_case("demo", cid).version)
    (msg,) = [m for m in svc.outbox("demo", cid) if m["template"] == "portal.link"]
    c: TestClient[Any] = TestClient(create_app(svc, auth=AuthSettings(cookie_secure=False)))
    token = csrf_of(c.get(msg["payload"]["link"].split("8000", 1)[1]).text)
    r = c.post(
        "/portal/demo/case/complainant_closes",
        data={"_csrf": token, "f.survey_satisfied": "false", "f.survey_comment": "仍有异响"},
    )
    assert r.status_code == 200
    case = svc.get_case("demo", cid)
    assert (case.status, case.step) == ("open", "tracking")
    told = [m for m in svc.outbox("demo", cid) if m["template"] == "qp.survey-not-solved"]
    assert told and told[0]["recipient"] == "role:quality_manager"
    # the status lookup by number and e-mail shows where it stands now
    token = csrf_of(c.get("/portal/demo/status").text)
    ok = c.post(
        "/portal/demo/status",
        data={"_csrf": token, "number": case.number, "contact": "ZHOU@example.com"},
    )
    assert ok.status_code == 200 and "填写客户投诉闭环跟踪单" in ok.text


def test_three_companies_run_the_complaint_job_side_by_side(svc: CaseService) -> None:
    """config/: east-factory runs QP as written, north-factory QP with a 48 h reply and its
    own numbering, shenzhen the 深圳 procedure; each counts only its own complaints."""
    complaint = {"customer_name": "西部电机", "content": "price", "urgency": "low"}
    east, north = svc.actor("east-factory", "liu"), svc.actor("north-factory", "song")
    numbers = {}
    for company, actor in (("east-factory", east), ("north-factory", north)):
        case = svc.open_case(
            company, "qp-complaint", actor, {**complaint, "description": "报价高于合同"}
        ).case
        case = svc.act(
            company, case.id, "resolve_directly", actor, {"resolution": "重开发票"}, case.version
        ).case
        (reply,) = [d for d in svc.deadlines(company, case.id) if d.id == "explain"]
        numbers[company] = (case.number, reply.due_at - reply.started_at)
    assert numbers["east-factory"][0].startswith("KS-") and numbers["east-factory"][1] == (
        dt.timedelta(hours=24)
    )
    assert re.fullmatch(r"HB-TS-\d\d-00001", numbers["north-factory"][0])
    assert numbers["north-factory"][1] == dt.timedelta(hours=48)
    # the month's statistics count the company's own complaints only
    month = svc.clock.now().astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m")
    stats = svc.open_case("north-factory", "complaint-statistics", north, {"period": month}).case
    assert stats.fields["total"] == 1 and stats.number.startswith("HB-TJ-")
    # the 深圳 company runs its own procedure, and not QP
    huang = svc.actor("shenzhen", "huang")
    sz = svc.open_case(
        "shenzhen",
        "complaint-shenzhen",
        huang,
        {
            "customer_name": "宏达电子",
            "form": "written",
            "category": "quality",
            "received_at": svc.clock.now().isoformat(),
            "issue": "外壳毛刺",
        },
    ).case
    assert sz.step == "clarify" and re.fullmatch(r"KSBG-\d{4}-0001", sz.number)
    assert "qp-complaint" not in svc.company("shenzhen").procedures
    assert "complaint-shenzhen" not in svc.company("east-factory").procedures


def test_a_portal_without_intake_needs_a_role_of_the_pack_not_an_opening_role(
    tmp_path: Path,
) -> None:
    """qp-complaint opens by sales only; its portal (links and lookups, no public form)
    acts as the complainant. A role the pack lacks is still an error, and so is a public
    form opening cases as a role that cannot open them."""
    lp, diags = load_pack(ROOT / "rules" / "qp-complaint", extensions=installed())
    assert lp is not None and not diags.errors

    def company(portal: str) -> list[str]:
        path = tmp_path / "co.yaml"
        path.write_text(
            "kefu: 1\ncompany: co\nname: 公司\n"
            "roles:\n  sales: {people: [a]}\n  responsible: {people: [a]}\n"
            "  quality: {people: [a]}\n  quality_manager: {people: [a]}\n"
            f"people:\n  a: {{name: A}}\nprocedures:\n  qp-complaint:\n    portal: {portal}\n",
            encoding="utf-8",
        )
        _, found = load_company(path, {lp.key: lp}, extensions=installed())
        return [f"{d.code} {d.message}" for d in found]

    assert company("{contact: [email]}") == []
    assert company("{role: complainant}") == [
        "K104 procedures.qp-complaint.portal.role: one-time links act as 'complainant', "
        "which is not a role of qp-complaint"
    ]
    (problem,) = company("{intake: true}")
    assert problem.startswith("K104 procedures.qp-complaint.portal.role: the portal opens")
