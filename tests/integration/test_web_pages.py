"""The staff pages (/web) and the customer portal (/portal) through Litestar's TestClient,
on SQLite and PostgreSQL: sign-in, forms with the service's validation answers, the 409
page, CSRF refusals, security headers, hostile values rendered as text, one-time links and
rate limits. tests/e2e drives the same pages in a real browser."""

from __future__ import annotations

import base64
import datetime as dt
import html
import re
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select

from api import portal
from core.cases.service import CaseService
from core.clock import TestClock
from core.storage import schema as t
from tests.helpers import DISPATCH, PASSWORD, PNG, VERIFY, hand_in_card
from tests.web import Dom, clients, csrf, errors

pytestmark = pytest.mark.service(logins=["wang", "li", "zhao"])
HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'; --><svg onload=alert(1)>",
    "{{ 7*7 }}{% raw %}",
]


@pytest.fixture
def web(svc: CaseService) -> Any:
    return clients(svc)


def by_number(svc: CaseService, number: str) -> int:
    with svc.db.read() as conn:
        return int(conn.execute(select(t.case.c.id).where(t.case.c.number == number)).scalar_one())


def open_case(c: TestClient[Any], **fields: str) -> int:
    token = csrf(c, "/web/new/repair-desk")
    data = {
        "_csrf": token,
        "f.channel": "phone",
        "f.customer_name": "张三",
        "f.phone": "13912345678",
        "f.symptom": "空调不制冷",
    }
    data.update({f"f.{k}": v for k, v in fields.items()})
    r = c.post("/web/new/repair-desk", data=data, follow_redirects=False)
    assert r.status_code == 303, r.text
    return int(re.search(r"/web/cases/(\d+)", r.headers["location"]).group(1))  # type: ignore[union-attr]


def test_pages_need_a_session_and_sign_in_starts_one(web: Any) -> None:
    anon = web()
    r = anon.get("/web/inbox?tab=mine", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/web/login?next=/web/inbox%3Ftab%3Dmine"
    assert anon.get("/", follow_redirects=False).headers["location"] == "/web/inbox"
    token = csrf(anon, "/web/login")
    bad = anon.post("/web/login", data={"_csrf": token, "username": "wang", "password": "nope"})
    assert bad.status_code == 401
    assert "wrong username or password" in bad.text
    # a next= that leaves the pages is ignored
    r = anon.post(
        "/web/login",
        data={"_csrf": token, "username": "wang", "password": PASSWORD, "next": "//evil.example"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/web/inbox"
    assert anon.get("/web/inbox").status_code == 200
    token = csrf(anon, "/web/inbox")
    out = anon.post("/web/logout", data={"_csrf": token}, follow_redirects=False)
    assert out.status_code == 303
    assert anon.get("/web/inbox", follow_redirects=False).status_code == 303


def test_every_form_post_needs_its_csrf_token(web: Any) -> None:
    c = web("wang")
    cid = open_case(c)
    for url, data in [
        ("/web/login", {"username": "wang", "password": PASSWORD}),
        ("/web/new/repair-desk", {"f.channel": "phone"}),
        (f"/web/cases/{cid}/actions/verify", {"_version": "1"}),
        ("/web/logout", {}),
        ("/portal/demo/status", {"number": "x", "contact": "y"}),
    ]:
        for token in (None, "forged-" + "x" * 40):
            body = dict(data, **({"_csrf": token} if token else {}))
            r = c.post(url, data=body, follow_redirects=False)
            assert r.status_code == 403, (url, r.status_code)
            assert "Traceback" not in r.text
    assert c.get(f"/web/cases/{cid}").status_code == 200  # still signed in, nothing changed


def test_pages_send_security_headers(web: Any) -> None:
    c = web("wang")
    for url in ("/web/login", "/web/inbox", "/web/cases", "/portal/demo", "/portal/demo/status"):
        r = c.get(url)
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, url
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "same-origin"
    cookie = web().get("/web/login").headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()


def test_open_act_with_field_messages_then_success_and_the_journal(
    web: Any, svc: CaseService
) -> None:
    c = web("wang")
    token = csrf(c, "/web/new/repair-desk")
    r = c.post("/web/new/repair-desk", data={"_csrf": token, "f.channel": "phone", "f.phone": "x"})
    assert r.status_code == 422
    assert errors(r.text) == {
        "phone": "not a valid phone number",
        "customer_name": "required",
        "symptom": "required",
    }
    assert 'value="x"' in r.text  # what was typed stays
    cid = open_case(c, occurred_at="2026-11-01T08:30")
    view = svc.get_case("demo", cid)
    assert view.fields["occurred_at"] == "2026-11-01T00:30:00+00:00"  # the company's zone
    r = c.post(
        f"/web/cases/{cid}/actions/verify",
        data={"_csrf": token, "_version": "1", "_seq": "1", "f.category": "electrical"},
    )
    assert r.status_code == 422
    assert errors(r.text) == {
        "contact_verified": "required",
        "in_scope": "required",
        "onsite_needed": "required",
        "urgency": "required",
    }
    data = {"_csrf": token, "_version": "1", "_seq": "1"}
    data.update({f"f.{k}": str(v).lower() for k, v in VERIFY.items()})
    r = c.post(f"/web/cases/{cid}/actions/verify", data=data, follow_redirects=False)
    assert r.status_code == 303
    page = c.get(r.headers["location"]).text
    assert svc.get_case("demo", cid).step == "dispatch"
    assert 'data-seq="' in page and "verify" in page and "suggest-engineer" in page


def test_a_stale_version_shows_what_changed_and_keeps_what_was_typed(
    web: Any, svc: CaseService
) -> None:
    c = web("wang")
    cid = open_case(c)
    token = csrf(c, f"/web/cases/{cid}")
    svc.act("demo", cid, "verify", svc.actor("demo", "zhao"), VERIFY, 1)  # another tab
    r = c.post(
        f"/web/cases/{cid}/actions/verify",
        data={"_csrf": token, "_version": "1", "_seq": "1", "f.region": "东区 typed"},
    )
    assert r.status_code == 409
    assert 'id="conflict"' in r.text and "zhao" in r.text
    assert "东区 typed" in r.text  # the action left the step: the typed values are listed
    # the same at a step where the action is still open: the form keeps the value
    svc_case = svc.get_case("demo", cid)
    token = csrf(c, f"/web/cases/{cid}")
    svc.act("demo", cid, "dispatch", svc.actor("demo", "zhao"), DISPATCH, svc_case.version)
    li = web("li")
    token = csrf(li, f"/web/cases/{cid}")
    svc.act(
        "demo", cid, "reschedule", svc.actor("demo", "li"), {"visit_at": DISPATCH["visit_at"]}, 3
    )
    r = li.post(
        f"/web/cases/{cid}/actions/reschedule",
        data={"_csrf": token, "_version": "3", "_seq": "1", "f.visit_at": "2026-11-30T15:00"},
    )
    assert r.status_code == 409
    assert 'value="2026-11-30T15:00"' in r.text and 'name="_version" value="4"' in r.text


def test_hostile_values_render_as_text_on_every_staff_page(
    web: Any, svc: CaseService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEFU_ATTACHMENTS", str(tmp_path / "files"))
    p = web()
    token = csrf(p, "/portal/demo/new/repair-desk")
    r = p.post(
        "/portal/demo/new/repair-desk",
        data={
            "_csrf": token,
            "f.customer_name": HOSTILE[0],
            "f.phone": "13912345678",
            "f.symptom": " ".join(HOSTILE),
            "f.address": HOSTILE[1],
            "f.product": HOSTILE[2],
        },
        files=[("f.fault_photos.file", (HOSTILE[1] + ".png", PNG, "image/png"))],
    )
    assert r.status_code == 200, r.text
    c = web("wang")
    pages = ["/web/inbox", "/web/cases", f"/web/cases?q={HOSTILE[0]}", "/web/board"]
    ids = re.findall(r"/web/cases/(\d+)", c.get("/web/cases").text)
    pages += [f"/web/cases/{i}" for i in set(ids)]
    seen = False
    for url in pages:
        html = c.get(url).text
        dom = Dom(html)
        assert not [t for t, _ in dom.tags if t in ("script", "svg", "img")], url
        assert dom.handlers() == [], url
        seen = seen or any(HOSTILE[0] in t for t in dom.text)
    assert seen  # the value is shown, as text
    (cid,) = set(ids)
    names = Dom(c.get(f"/web/cases/{cid}").text).text
    assert names.count(HOSTILE[1] + ".png") == 2  # the file's name in the field and the list


def test_lists_search_board_procedures_and_the_diagram(web: Any, svc: CaseService) -> None:
    c = web("wang")
    cid = open_case(c, customer_name="王小明")
    assert "王小明" not in c.get("/web/cases?q=nobody-has-this").text
    found = c.get("/web/cases?q=王小明&status=open&procedure=repair-desk")
    assert f"/web/cases/{cid}" in found.text
    bad = c.get("/web/cases?status=sideways&procedure=nope")
    assert bad.status_code == 200 and "open or closed" in bad.text
    assert c.get("/web/cases?page=abc").status_code == 200
    assert f"/web/cases/{cid}" in c.get("/web/inbox").text
    assert c.get("/web/inbox?tab=overdue").status_code == 200
    board = c.get("/web/board").text
    assert "/web/cases?status=open&amp;assignee=role%3Aagent" in board
    mine = c.get("/web/cases?status=open&assignee=role:agent")
    assert f"/web/cases/{cid}" in mine.text
    assert "unknown" in c.get("/web/cases?assignee=person:nobody-here").text
    assert "/web/reports/satisfaction" in c.get("/web/reports").text
    report = c.get("/web/reports/satisfaction")
    assert report.status_code == 200 and 'id="report"' in report.text
    assert c.get("/web/reports/nope").status_code == 404
    assert c.get("/web/procedures/repair-desk").status_code == 200
    svg = c.get("/web/procedures/repair-desk/diagram.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.count('class="step"') == len(
        svc.company("demo").procedures["repair-desk"].pack.steps
    )
    assert c.get("/web/cases/99999").status_code == 404
    for url in ("/web/cases/1?done=x", "/web/cases/99999999999999999999"):
        r = c.get(url)
        assert 400 <= r.status_code < 500 and r.headers["content-type"].startswith("text/html")
        assert "Traceback" not in r.text
    assert c.get("/web/cases/abc").status_code == 404  # no such route: a page all the same
    assert c.get("/web/procedures/nope").status_code == 404
    assert web("li").get("/web/new/repair-desk").status_code == 403  # engineers do not open


def test_portal_intake_status_link_once_and_rate_limits(
    web: Any, svc: CaseService, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = web()
    token = csrf(p, "/portal/demo/new/repair-desk")
    r = p.post("/portal/demo/new/repair-desk", data={"_csrf": token, "f.phone": "123"})
    assert r.status_code == 422 and "not a valid phone number" in r.text
    r = p.post(
        "/portal/demo/new/repair-desk",
        data={
            "_csrf": token,
            "f.customer_name": "李四",
            "f.phone": "139 1234 5678",
            "f.email": "li4@example.com",
            "f.symptom": "漏水",
        },
    )
    number = re.search(r'id="tracking-number">([^<]+)<', r.text).group(1)  # type: ignore[union-attr]
    view = svc.get_case("demo", by_number(svc, number))
    assert view.fields["channel"] == "web" and view.created_by == portal.PORTAL_ACTOR
    wrong = p.post("/portal/demo/status", data={"_csrf": token, "number": number, "contact": "1"})
    unknown = p.post(
        "/portal/demo/status", data={"_csrf": token, "number": "BX-0", "contact": "13912345678"}
    )
    assert wrong.status_code == unknown.status_code == 404
    ok = p.post(
        "/portal/demo/status", data={"_csrf": token, "number": number, "contact": "LI4@example.com"}
    )
    assert ok.status_code == 200 and "受理核实" in ok.text
    # staff walk it to the customer's confirmation: the link goes out through the outbox
    wang, li = svc.actor("demo", "wang"), svc.actor("demo", "li")
    svc.act("demo", view.id, "verify", wang, VERIFY, 1)
    svc.act("demo", view.id, "dispatch", wang, DISPATCH, 2)
    svc.act(
        "demo", view.id, "complete", li, {"hours_spent": 1, "result": "ok", "resolved": True}, 3
    )
    hand_in_card(svc, view.id, 4)  # under warranty: the callback follows the card's entry
    (msg,) = [m for m in svc.outbox("demo", view.id) if m["template"] == "portal.link"]
    link = msg["payload"]["link"].split("8000", 1)[1]
    raw = link.rsplit("/", 1)[1]
    assert len(raw) >= 43 and msg["payload"]["address"] == "li4@example.com"
    assert msg["payload"]["subject"] == f"{number}:请确认处理结果"  # the demo speaks zh-CN
    issued = [e for e in svc.journal("demo", view.id) if e["kind"] == "portal-link"]
    assert raw not in str(issued) and issued[0]["data"]["digest"] == portal.digest(raw)
    r = p.get(link, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/portal/demo/case"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "HttpOnly" in r.headers["set-cookie"]
    assert p.get(link, follow_redirects=False).status_code == 410  # once only
    page = p.get("/portal/demo/case")
    assert page.status_code == 200 and "f.customer_confirmed" in page.text
    r = p.post("/portal/demo/case/confirm", data={"_csrf": token})
    assert r.status_code == 422 and "required" in r.text
    r = p.post("/portal/demo/case/confirm", data={"_csrf": token, "f.customer_confirmed": "true"})
    assert r.status_code == 200 and svc.get_case("demo", view.id).step == "survey"
    assert p.get("/portal/demo/case").status_code == 401  # the session was for one action
    (survey,) = [
        m
        for m in svc.outbox("demo", view.id)
        if m["template"] == "portal.link" and m["payload"]["step"] == "survey"
    ]
    p.get(survey["payload"]["link"].split("8000", 1)[1])
    r = p.post("/portal/demo/case/answer_survey", data={"_csrf": token, "f.satisfaction": "9"})
    assert r.status_code == 422 and "must be at most 5" in r.text
    r = p.post("/portal/demo/case/confirm", data={"_csrf": token, "f.customer_confirmed": "true"})
    assert r.status_code == 401  # not an action this link allows
    # rate limits: counted in the database, per client address
    monkeypatch.setitem(portal.LIMITS, "status", 2)
    codes = [
        p.post("/portal/demo/status", data={"_csrf": token, "number": "x", "contact": "y"})
        for _ in range(3)
    ]
    assert [r.status_code for r in codes][-1] == 429


def test_an_expired_link_is_refused(web: Any, svc: CaseService) -> None:
    assert isinstance(svc.clock, TestClock)
    c = web("wang")
    cid = open_case(c, email="a@example.com")
    wang, li = svc.actor("demo", "wang"), svc.actor("demo", "li")
    svc.act("demo", cid, "verify", wang, VERIFY, 1)
    svc.act("demo", cid, "dispatch", wang, DISPATCH, 2)
    svc.act("demo", cid, "complete", li, {"hours_spent": 1, "result": "ok", "resolved": True}, 3)
    hand_in_card(svc, cid, 4)
    (msg,) = [m for m in svc.outbox("demo", cid) if m["template"] == "portal.link"]
    svc.clock.set(svc.clock.now() + dt.timedelta(days=8))
    r = web().get(msg["payload"]["link"].split("8000", 1)[1], follow_redirects=False)
    assert r.status_code == 410


def test_the_language_is_the_persons_then_the_browsers_then_the_companys(web: Any) -> None:
    c = web()
    assert "<h1>登录</h1>" in c.get("/web/login").text  # demo's locale: zh-CN
    english = c.get("/web/login", headers={"Accept-Language": "en-US,en;q=0.9"}).text
    assert "<h1>Sign in</h1>" in english and '<html lang="en">' in english
    c.get("/web/lang/zh-CN?next=/web/login")
    chosen = c.get("/web/login", headers={"Accept-Language": "en-US"}).text
    assert "<h1>登录</h1>" in chosen


def test_nul_characters_and_huge_values_are_a_page_with_messages(web: Any) -> None:
    c = web("wang")
    token = csrf(c, "/web/new/repair-desk")
    r = c.post(
        "/web/new/repair-desk",
        data={
            "_csrf": token,
            "f.channel": "phone",
            "f.customer_name": "a\x00b",
            "f.phone": "13912345678",
            "f.symptom": "x" * 60_000,
            "f.occurred_at": "0001-01-01T00:00",
        },
    )
    assert r.status_code == 422, r.text
    assert errors(r.text) == {"customer_name": "contains a NUL character"}
    r = c.post(
        "/web/new/repair-desk",
        data={
            "_csrf": token,
            "f.channel": "phone",
            "f.customer_name": "ab",
            "f.phone": "13912345678",
            "f.symptom": "x" * 60_000,
            "f.occurred_at": "0001-01-01T00:00",
        },
    )
    assert r.status_code == 422, r.text
    assert set(errors(r.text)) == {"symptom", "occurred_at"}, errors(r.text)
    p = web()
    token = csrf(p, "/portal/demo/status")
    r = p.post("/portal/demo/status", data={"_csrf": token, "number": "\x00", "contact": "\x00"})
    assert r.status_code == 404 and "Traceback" not in r.text
    r = p.post("/web/login", data={"_csrf": token, "username": "wa\x00ng", "password": "x"})
    assert r.status_code == 422 and "Traceback" not in r.text


def test_reports_show_their_chart_and_link_their_exports_and_the_case_list_exports(
    web: Any, svc: CaseService
) -> None:
    wang_a = svc.actor("demo", "wang")
    complaint = {"customer_name": "华东汽配", "content": "quality", "urgency": "high"}
    svc.open_case("demo", "qp-complaint", wang_a, {**complaint, "description": "尺寸超差"})
    c = web("wang")
    r = c.get("/web/reports/complaints-monthly", headers={"Accept-Language": "en"})
    assert r.status_code == 200
    m = re.search(r'<img src="data:image/svg\+xml;base64,([^"]+)" alt="([^"]+)"', r.text)
    assert m, "no chart on the report page"
    svg = base64.b64decode(m.group(1)).decode()
    assert svg.lstrip().startswith("<svg") and "<script" not in svg and "Product quality" in svg
    assert m.group(2)  # the chart's title as its text alternative
    links = dict(re.findall(r'<a href="([^"]+)" download>(XLSX|CSV)</a>', r.text)[:2])
    xlsx, csv_link = (html.unescape(k) for k in links)
    assert xlsx.startswith("/api/v1/reports/complaints-monthly/export.xlsx?lang=en")
    got = c.get(xlsx)
    assert got.status_code == 200 and got.content[:2] == b"PK"  # a workbook
    table = c.get(csv_link).content.decode("utf-8-sig")
    assert "Product quality" in table  # the page's language, as the table on the page
    # a report without a chart: no image
    plain = c.get("/web/reports/satisfaction")
    assert plain.status_code == 200 and "data:image/svg" not in plain.text
    # the case list links the API's export with its procedure and status
    cid = open_case(c, customer_name="导出测试")
    page = c.get("/web/cases?procedure=repair-desk&status=open&q=导出测试").text
    export = re.search(r'<a href="([^"]+\.csv\?[^"]+)" download>CSV</a>', page)
    assert export and "procedure=repair-desk" in export.group(1)
    assert "not only these search results" in page or "不仅是搜索结果" in page
    rows = c.get(html.unescape(export.group(1))).content.decode("utf-8-sig")
    assert svc.get_case("demo", cid).number in rows and "华东汽配" not in rows
