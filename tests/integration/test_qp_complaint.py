"""QP/XX-A-2021 §5.1.3.3 "谁投诉谁关闭" through the customer portal, on SQLite and
PostgreSQL with the demo company: three months after sales answered, sales sends the
original complainant a one-time link; the complainant (no account) says whether the
problem is solved, and only that closes the case. The scenarios in rules/qp-complaint test
the procedure; this checks what the complainant sees and does."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from litestar.testing import TestClient

from api import portal
from api.app import create_app
from api.auth import AuthSettings
from core.cases.service import CaseService
from core.runtime import worker


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
    token = re.search(r'name="_csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
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
    page = c.get(msg["payload"]["link"].split("8000", 1)[1])
    token = re.search(r'name="_csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
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
    token = re.search(
        r'name="_csrf" value="([^"]+)"', c.get("/portal/demo/status").text
    ).group(1)  # type: ignore[union-attr]
    ok = c.post(
        "/portal/demo/status",
        data={"_csrf": token, "number": case.number, "contact": "ZHOU@example.com"},
    )
    assert ok.status_code == 200 and "填写客户投诉闭环跟踪单" in ok.text
