"""Documents on the pages, on SQLite and PostgreSQL: files uploaded with a form (through the
attachment service the API's upload route uses, refusals beside the field), the case's
files with download links for the people who may read it, signatures given with a
``sign:`` action (countersign progress, four-eyes, void after a change) and the records
a case prints.

The packs: tests/packs/countersign (深圳 客户服务管理程序 5.2.4, a meeting's conclusions
countersigned by quality, production and R&D, with its minutes and photos) and
rules/qp-complaint (QP/XX-A-2021 §5.1.3.1, the quality manager signs the closed-loop
tracking form), in the documents test company.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.web import uploads
from core.cases.service import CaseService
from core.runtime.users import ensure_user
from core.storage.db import Database
from tests.helpers import FIXTURES, PASSWORD, PNG, documents_rules, service
from tests.web import Dom, clients, csrf, errors

PEOPLE = ("li", "wang", "zhao", "liu", "chen")
HOSTILE_NAME = '<img src=x onerror="alert(1)">.png'


@pytest.fixture
def dsvc(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CaseService]:
    monkeypatch.setenv("KEFU_ATTACHMENTS", str(tmp_path / "files"))
    s = service(db, rules=documents_rules(tmp_path), config=FIXTURES / "documents")
    with db.write() as conn:
        for name in PEOPLE:
            ensure_user(conn, name, name, s.clock.now(), password=PASSWORD)
    yield s
    s.close()


@pytest.fixture
def web(dsvc: CaseService) -> Any:
    return clients(dsvc)


def case_id(location: str) -> int:
    m = re.search(r"/web/cases/(\d+)", location)
    assert m, location
    return int(m.group(1))


def post(c: TestClient[Any], url: str, data: dict[str, Any], files: Any = None) -> Any:
    return c.post(url, data=data, files=files, follow_redirects=False)


def form_of_action(html: str, action: str) -> str:
    m = re.search(rf'<details class="action" id="action-{action}".*?</details>', html, re.S)
    assert m, f"no form for {action}"
    return m.group(0)


def test_files_go_up_with_the_form_and_down_to_readers_only(web: Any, dsvc: CaseService) -> None:
    zhao = web("zhao")
    page = zhao.get("/web/new/countersign").text
    assert 'enctype="multipart/form-data"' in page
    assert 'type="file"' in page and 'name="f.photos.file"' in page and "multiple" in page
    token = csrf(zhao, "/web/new/countersign")
    r = post(
        zhao,
        "/web/new/countersign",
        {"_csrf": token, "f.subject": "尺寸超差原因不明"},
        [
            ("f.photos.file", ("front.png", PNG, "image/png")),
            ("f.photos.file", (HOSTILE_NAME, PNG, "image/png")),
        ],
    )
    assert r.status_code == 303, r.text
    cid = case_id(r.headers["location"])
    photos = dsvc.get_case("docs", cid).fields["photos"]
    assert [p["name"] for p in photos] == ["front.png", HOSTILE_NAME]
    assert {p["type"] for p in photos} == {"image/png"}  # sniffed from the content
    html = zhao.get(f"/web/cases/{cid}").text
    links = re.findall(r'href="/api/v1/attachments/(\d+)"', html)
    assert sorted(set(map(int, links))) == sorted(p["id"] for p in photos)
    dom = Dom(html)
    assert not [t for t, _ in dom.tags if t in ("img", "script")] and dom.handlers() == []
    assert any(HOSTILE_NAME in t for t in dom.text)  # the name, shown as text
    got = zhao.get(f"/api/v1/attachments/{photos[0]['id']}")
    assert got.status_code == 200 and got.content == PNG
    # who may not read the case gets neither the case page nor its files
    li = web("li")  # sales: no role of the countersign procedure
    assert li.get(f"/web/cases/{cid}").status_code == 403
    assert li.get(f"/api/v1/attachments/{photos[0]['id']}").status_code in (403, 404)


def test_a_refused_file_is_the_fields_message_and_a_stored_one_is_not_asked_again(
    web: Any, dsvc: CaseService
) -> None:
    zhao = web("zhao")
    cid = dsvc.open_case(
        "docs", "countersign", dsvc.actor("docs", "zhao"), {"subject": "x"}
    ).case.id
    url = f"/web/cases/{cid}/actions/conclude"
    token = csrf(zhao, f"/web/cases/{cid}")
    base = {"_csrf": token, "_version": "1", "_seq": "1", "f.conclusion": "模具磨损"}
    # a picture where the field takes PDF or text: 415, beside the field, the typing kept
    r = post(zhao, url, base, [("f.minutes.file", ("minutes.pdf", PNG, "application/pdf"))])
    assert r.status_code == 415
    assert re.match(r"minutes\.pdf: minutes does not take image/png", errors(r.text)["minutes"])
    assert "模具磨损" in form_of_action(r.text, "conclude")
    assert r.headers["content-type"].startswith("text/html")
    # over the field's 2 KB: 413, beside the field
    r = post(zhao, url, base, [("f.minutes.file", ("minutes.txt", b"x" * 3000, "text/plain"))])
    assert r.status_code == 413 and "takes files up to 2000 bytes" in errors(r.text)["minutes"]
    assert dsvc.get_case("docs", cid).version == 1  # nothing happened to the case
    # a good file, but the form is refused for another field: the file is kept, signed
    r = post(
        zhao,
        url,
        {**base, "f.conclusion": ""},
        [("f.minutes.file", ("纪要.txt", b"meeting minutes\n", "text/plain"))],
    )
    assert r.status_code == 422 and errors(r.text) == {"conclusion": "required"}
    kept = re.search(r'name="f\.minutes\.new" value="([^"]+)" checked> 纪要\.txt', r.text)
    assert kept, form_of_action(r.text, "conclude")
    upload_id = uploads.untoken(token, kept.group(1))
    assert upload_id is not None
    # a token this browser did not get is nothing
    forged = uploads.token("another browser's secret " + "x" * 20, upload_id)
    r = post(zhao, url, {**base, "f.minutes.new": forged})
    assert r.status_code == 303
    assert "minutes" not in dsvc.get_case("docs", cid).fields
    # the kept file is taken without being sent again
    cid2 = dsvc.open_case(
        "docs", "countersign", dsvc.actor("docs", "zhao"), {"subject": "y"}
    ).case.id
    token2 = csrf(zhao, f"/web/cases/{cid2}")
    assert token2 == token  # one browser, one token
    r = post(
        zhao,
        f"/web/cases/{cid2}/actions/conclude",
        {**base, "f.minutes.new": kept.group(1)},
    )
    assert r.status_code == 303, errors(r.text)
    minutes = dsvc.get_case("docs", cid2).fields["minutes"]
    assert minutes["id"] == upload_id and minutes["name"] == "纪要.txt"
    assert [u["id"] for u in dsvc.uploads("docs", cid2)] == [upload_id]


def test_a_body_over_the_servers_limit_is_a_page_with_the_fields_marked(
    web: Any, dsvc: CaseService, monkeypatch: pytest.MonkeyPatch
) -> None:
    zhao = web("zhao")
    cid = dsvc.open_case(
        "docs", "countersign", dsvc.actor("docs", "zhao"), {"subject": "x"}
    ).case.id
    token = csrf(zhao, f"/web/cases/{cid}")
    monkeypatch.setattr(uploads, "MAX_FORM", 100)  # an urlencoded form over the limit
    r = zhao.post(
        f"/web/cases/{cid}/actions/conclude",
        data={"_csrf": token, "_version": "1", "f.conclusion": "x" * 200},
        headers={"Accept-Language": "en"},
    )
    assert r.status_code == 413
    assert errors(r.text) == {"minutes": uploads.TOO_LARGE}
    assert dsvc.get_case("docs", cid).version == 1


def test_countersign_progress_four_eyes_and_void_after_a_change(
    web: Any, dsvc: CaseService
) -> None:
    zhao_a = dsvc.actor("docs", "zhao")
    cid = dsvc.open_case("docs", "countersign", zhao_a, {"subject": "原因不明"}).case.id
    dsvc.act("docs", cid, "conclude", zhao_a, {"conclusion": "更换模具"}, 1)
    zhao, wang, chen = web("zhao"), web("wang"), web("chen")
    english = {"Accept-Language": "en"}

    def panel(c: TestClient[Any]) -> str:
        html = c.get(f"/web/cases/{cid}", headers=english).text
        m = re.search(
            r'<section class="card" aria-labelledby="h-signatures".*?</section>', html, re.S
        )
        assert m, "no signatures on the case page"
        return re.sub(r"\s+", " ", m.group(0))

    assert "countersigned 0 / 3" in panel(zhao)
    assert 'Still to sign</dt><dd class="waiting">Head of quality, Production, R&amp;D' in panel(
        zhao
    )
    form = form_of_action(zhao.get(f"/web/cases/{cid}", headers=english).text, "sign_off")
    assert "Submitting signs" in form and "Conclusions, Corrective actions" in form
    assert re.search(r"You sign as <strong>Head of quality</strong>", form)
    token = csrf(zhao, f"/web/cases/{cid}")
    r = post(zhao, f"/web/cases/{cid}/actions/sign_off", {"_csrf": token, "_version": "2"})
    assert r.status_code == 303
    assert "countersigned 1 / 3" in panel(zhao) and "赵经理 (zhao) · Head of quality" in panel(zhao)
    # the same person again: the page says why before, and the form says why after
    form = form_of_action(zhao.get(f"/web/cases/{cid}", headers=english).text, "sign_off")
    assert "You cannot sign this: zhao has signed &#39;conclusions&#39; already" in form
    r = post(zhao, f"/web/cases/{cid}/actions/sign_off", {"_csrf": token, "_version": "3"})
    assert r.status_code == 403
    assert re.search(r'id="form-message">\s*zhao has signed &#39;conclusions&#39; already', r.text)
    # wang holds production and R&D: signs as the first role still open
    wtoken = csrf(wang, f"/web/cases/{cid}")
    form = form_of_action(wang.get(f"/web/cases/{cid}", headers=english).text, "sign_off")
    assert re.search(r"You sign as <strong>Production</strong>", form)
    assert (
        post(
            wang, f"/web/cases/{cid}/actions/sign_off", {"_csrf": wtoken, "_version": "3"}
        ).status_code
        == 303
    )
    form = form_of_action(wang.get(f"/web/cases/{cid}", headers=english).text, "sign_off")
    assert "signed &#39;conclusions&#39; already" in form  # distinct: one person, one signature
    # the conclusions change: both signatures are void, struck through, and say why
    r = post(
        zhao,
        f"/web/cases/{cid}/actions/amend",
        {"_csrf": token, "_version": "4", "f.conclusion": "更换模具并全检"},
    )
    assert r.status_code == 303
    shown = panel(zhao)
    assert shown.count("<del>") == 2 and "changed after signing: Conclusions" in shown
    assert "countersigned 0 / 3" in shown
    # all three sign again; the last one completes it and the case moves on
    for c, version in ((zhao, 5), (wang, 6), (chen, 7)):
        t = csrf(c, f"/web/cases/{cid}")
        form = form_of_action(c.get(f"/web/cases/{cid}", headers=english).text, "sign_off")
        if c is chen:
            assert "yours completes the countersignature" in form
        r = post(c, f"/web/cases/{cid}/actions/sign_off", {"_csrf": t, "_version": str(version)})
        assert r.status_code == 303, r.text
    assert dsvc.get_case("docs", cid).step == "agreed"
    assert "✔ signed" in panel(zhao)


def test_the_quality_managers_signature_and_the_tracking_form_from_the_case_page(
    web: Any, dsvc: CaseService
) -> None:
    li_a, wang_a = dsvc.actor("docs", "li"), dsvc.actor("docs", "wang")
    fields = {"customer_name": "华东汽配", "content": "quality", "urgency": "high"}
    cid = dsvc.open_case(
        "docs", "qp-complaint", li_a, {**fields, "description": "尺寸超差"}
    ).case.id
    dsvc.act("docs", cid, "organise", li_a, {"responsible_dept": "生产部"}, 1)
    done = {"cause": "模具磨损", "corrective_action": "换模具", "completion_date": "2026-12-20"}
    dsvc.act("docs", cid, "submit_form", wang_a, done, 2)
    zhao = web("zhao")
    html = zhao.get(f"/web/cases/{cid}").text
    form = form_of_action(html, "approve")
    assert (
        "提交即签字" in form and "品质部经理审核签字" in form and "✍ 审核签字并指定跟踪人" in form
    )
    token = csrf(zhao, f"/web/cases/{cid}")
    r = post(
        zhao,
        f"/web/cases/{cid}/actions/approve",
        {
            "_csrf": token,
            "_version": "3",
            "_seq": "3",
            "f.tracker": "zhao",
            "f.review_comment": "同意",
        },
    )
    assert r.status_code == 303, errors(r.text)
    html = zhao.get(f"/web/cases/{cid}").text
    assert re.search(
        r'data-signature="quality_review">\s*<h3>品质部经理审核签字\s*<span class="state">✔ 已签字',
        html,
    )
    assert "赵经理 (zhao) · 品质部经理" in html
    # the record the case prints, linked from the page, shows the signature
    links = re.findall(r'href="(/api/v1/cases/\d+/records/tracking_form(?:/pdf)?)"', html)
    assert links == [
        f"/api/v1/cases/{cid}/records/tracking_form",
        f"/api/v1/cases/{cid}/records/tracking_form/pdf",
    ]
    record = zhao.get(links[0])
    assert (
        record.status_code == 200
        and "客户投诉闭环跟踪单" in record.text
        and "赵经理" in record.text
    )
    pdf = zhao.get(links[1])
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


@pytest.mark.service(logins=["wang"])
def test_the_customer_sends_photos_with_the_portal_intake(
    svc: CaseService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEFU_ATTACHMENTS", str(tmp_path / "files"))
    web = clients(svc)
    customer = web()
    page = customer.get("/portal/demo/new/repair-desk").text
    assert 'enctype="multipart/form-data"' in page and 'name="f.fault_photos.file"' in page
    assert "/api/v1/attachments" not in page
    token = csrf(customer, "/portal/demo/new/repair-desk")
    data = {"_csrf": token, "f.customer_name": "李四", "f.phone": "13912345678"}
    r = post(
        customer,
        "/portal/demo/new/repair-desk",
        data,
        [("f.fault_photos.file", ("leak.png", PNG, "image/png"))],
    )
    assert r.status_code == 422 and errors(r.text) == {"symptom": "required"}
    kept = re.search(r'name="f\.fault_photos\.new" value="([^"]+)" checked> leak\.png', r.text)
    assert kept  # stored once; the customer does not choose it again
    r = post(
        customer,
        "/portal/demo/new/repair-desk",
        {**data, "f.symptom": "漏水", "f.fault_photos.new": kept.group(1)},
    )
    assert r.status_code == 200, errors(r.text)
    number = re.search(r'id="tracking-number">([^<]+)<', r.text)
    assert number
    cid = svc.case_id_by_number("demo", number.group(1))
    assert cid is not None
    (photo,) = svc.get_case("demo", cid).fields["fault_photos"]
    assert photo["name"] == "leak.png" and photo["type"] == "image/png"
    wang = web("wang")
    assert wang.get(f"/api/v1/attachments/{photo['id']}").content == PNG
    # a customer's file the field does not take: 415 on the portal page, beside the field
    r = post(
        customer,
        "/portal/demo/new/repair-desk",
        {**data, "f.symptom": "漏水"},
        [("f.fault_photos.file", ("notes.txt", b"plain words", "image/png"))],
    )
    assert r.status_code == 415 and "does not take text/plain" in errors(r.text)["fault_photos"]


def test_a_lists_rows_take_files_and_keep_them_when_the_form_comes_back(
    web: Any, dsvc: CaseService
) -> None:
    """A list item's attachment cell (a visit's photo) has a file input in its row; a
    refused file is the list's message naming the row, a good one waits, signed, in its
    row while the form is refused for another reason, and the saved item links its file."""
    li = web("li")
    page = li.get("/web/new/retention").text
    assert 'enctype="multipart/form-data"' in page
    assert 'name="f.visits.0.photo.file"' in page and 'name="f.visits.1.photo.file"' in page
    token = csrf(li, "/web/new/retention")
    rows = {"_csrf": token, "f.visits.0.note": "上门", "f.visits.1.note": "复查"}
    # a web page where the photo takes pictures and documents: 415, beside the list, naming
    # the row
    r = post(
        li,
        "/web/new/retention",
        {**rows, "f.customer_name": "张三"},
        [
            (
                "f.visits.1.photo.file",
                ("说明.png", b"<html><script>x()</script></html>", "image/png"),
            )
        ],
    )
    assert r.status_code == 415, r.text
    assert re.match(
        r"#2 说明\.png: visits\.photo does not take text/html", errors(r.text)["visits"]
    )
    # a good photo in row 1, the form refused (no customer): the photo waits in its row
    r = post(
        li,
        "/web/new/retention",
        {**rows, "f.visits.0.photo._had": ""},
        [("f.visits.0.photo.file", ("现场.png", PNG, "image/png"))],
    )
    assert r.status_code == 422 and errors(r.text) == {"customer_name": "required"}
    kept = re.search(r'name="f\.visits\.0\.photo\.new" value="([^"]+)" checked> 现场\.png', r.text)
    assert kept, r.text
    assert 'name="f.visits.1.photo.new"' not in r.text  # the other row has none
    r = post(
        li,
        "/web/new/retention",
        {**rows, "f.customer_name": "张三", "f.visits.0.photo.new": kept.group(1)},
    )
    assert r.status_code == 303, errors(r.text)
    cid = case_id(r.headers["location"])
    visits = dsvc.get_case("docs", cid).fields["visits"]
    assert [(v["note"], (v.get("photo") or {}).get("name")) for v in visits] == [
        ("上门", "现场.png"),
        ("复查", None),
    ]
    photo = visits[0]["photo"]
    assert photo["id"] == uploads.untoken(token, kept.group(1))
    assert li.get(f"/api/v1/attachments/{photo['id']}").content == PNG
