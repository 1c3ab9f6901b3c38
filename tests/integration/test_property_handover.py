"""The property handover with photos, through the case service and the API, on SQLite and
PostgreSQL (the scenarios in rules/property-handover cannot upload files).

客户服务办理业主收楼工作程序 第四步: each defect of the joint inspection carries its photos
(an attachment field inside the checklist's items); each becomes a handover-rectification
case that gets its own copy of the photos; the inspection record lists them.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.auth import AuthSettings
from core.cases import attachments, records, retention
from core.cases.queries import linked_cases, require_read
from core.cases.service import CaseService
from core.errors import InvalidInput, NotAllowed, NotFound, UnsupportedType
from core.runtime import outbox
from core.runtime.plugins import installed
from core.runtime.users import ensure_user
from core.spec.loading import load_pack
from tests.helpers import PASSWORD, service
from tests.integration.test_web_pages import csrf

ROOT = Path(__file__).resolve().parents[2]
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
OWNER = {"unit": "阳光花园3栋1201", "owner_name": "张伟", "owner_phone": "13911112222"}
NOTICE = {
    "completion_status": "已竣工验收备案",
    "handover_at": "2026-11-10T10:00+08:00",
    "handover_place": "property_office",
    "notice_channel": "phone",
    "call_note": "业主本人接听",
}
DOCUMENTS = [
    {"id": i, "doc": d, "status": "handed"}
    for i, d in enumerate(["contract", "title_deed", "tax_invoice", "manual", "fitout"], 1)
]


@pytest.fixture
def hsvc(db: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CaseService]:
    monkeypatch.setenv("KEFU_ATTACHMENTS", str(tmp_path / "files"))
    s = service(db)  # the checkout's packs and config/demo.yaml
    yield s
    s.close()


def photo(svc: CaseService, user: str, path: str, data: bytes = PNG, name: str = "p.png") -> int:
    up = attachments.upload(
        svc, svc.actor("demo", user), "property-handover", path, name, io.BytesIO(data)
    )
    return up.id


def at_inspection(svc: CaseService) -> int:
    wang = svc.actor("demo", "wang")
    cid = svc.open_case("demo", "property-handover", wang, OWNER).case.id
    svc.act("demo", cid, "send_notice", wang, NOTICE, 1)
    svc.act("demo", cid, "owner_arrived", wang, {}, 2)
    svc.act(
        "demo",
        cid,
        "documents_done",
        wang,
        {"documents": DOCUMENTS, "forms_completed": True},
        3,
    )
    return cid


def act(svc: CaseService, cid: int, action: str, user: str, fields: dict[str, Any]) -> Any:
    version = svc.get_case("demo", cid).version
    return svc.act("demo", cid, action, svc.actor("demo", user), fields, version)


def check(svc: CaseService, cid: int, checklist: Any) -> Any:
    """The inspector records checks: one item (a mapping) or the whole list."""
    return act(svc, cid, "record_check", "xu", {"checklist": checklist})


def test_each_defect_keeps_its_photos_and_its_rectification_gets_a_copy(
    hsvc: CaseService,
) -> None:
    cid = at_inspection(hsvc)
    ceiling = [photo(hsvc, "xu", "checklist.photos", PNG, "天花板.png")]
    window = [photo(hsvc, "xu", "checklist.photos", PNG + b"\0", f"窗{i}.png") for i in (1, 2)]
    check(hsvc, cid, {"room": "living", "part": "wall", "result": "ok"})
    defect = {"result": "defect"}
    check(
        hsvc,
        cid,
        {
            **defect,
            "room": "living",
            "part": "ceiling",
            "description": "天花板裂缝",
            "photos": ceiling,
        },
    )
    check(
        hsvc,
        cid,
        {
            **defect,
            "room": "bedroom",
            "part": "window",
            "description": "窗框渗水",
            "photos": window,
        },
    )
    items = hsvc.get_case("demo", cid).fields["checklist"]
    assert [len(it.get("photos", [])) for it in items] == [0, 1, 2]
    assert items[2]["photos"][0]["name"] == "窗1.png"
    assert {u["id"] for u in hsvc.uploads("demo", cid)} == set(ceiling + window)
    # changing an item's other fields keeps its photos
    check(hsvc, cid, {"id": 3, "due_at": "2026-11-30T18:00+08:00"})
    assert hsvc.get_case("demo", cid).fields["checklist"][2]["photos"] == items[2]["photos"]

    # the whole list sent back as a page's table does (no files in it) keeps the photos;
    # null removes them
    whole = [{k: v for k, v in it.items() if k != "photos"} for it in items]
    whole[2]["due_at"] = "2026-11-30T18:00+08:00"
    check(hsvc, cid, whole)
    assert hsvc.get_case("demo", cid).fields["checklist"][2]["photos"] == items[2]["photos"]
    check(hsvc, cid, {"room": "kitchen", "part": "door", "result": "ok", "photos": ceiling})
    door = {k: v for k, v in hsvc.get_case("demo", cid).fields["checklist"][3].items()}
    check(hsvc, cid, [*whole, {**door, "photos": None}])
    assert "photos" not in hsvc.get_case("demo", cid).fields["checklist"][3]
    check(hsvc, cid, whole)  # item 4 removed again

    res = act(hsvc, cid, "inspection_done", "xu", {})
    assert res.case.step == "rectify" and len(res.linked) == 2
    children = [hsvc.get_case("demo", c) for c in res.linked]
    assert [c.fields["description"] for c in children] == ["天花板裂缝", "窗框渗水"]
    # each rectification holds its own uploads of the same stored content
    for child, mine in zip(children, (ceiling, window), strict=True):
        copies = hsvc.uploads("demo", child.id)
        assert [u["field"] for u in copies] == ["photos"] * len(mine)
        assert not {u["id"] for u in copies} & set(mine)
        parents = {u["id"]: u for u in hsvc.uploads("demo", cid)}
        assert [u["sha256"] for u in copies] == [parents[i]["sha256"] for i in mine]
        assert [p["id"] for p in child.fields["photos"]] == [u["id"] for u in copies]
    # the contractor (li) opens the copy through the rectification case
    li = hsvc.actor("demo", "li")
    row = attachments.find(hsvc, li, hsvc.uploads("demo", children[1].id)[1]["id"])
    require_read(hsvc, li, hsvc.get_case("demo", row["case_id"]))
    assert attachments.content(hsvc, "demo", row).read() == PNG + b"\0"
    # the inspection record lists the item photos under the list's and the field's labels
    doc, _ = records.render_html(hsvc, "demo", cid, "inspection_record")
    assert [(f["field"], f["name"]) for f in doc.attachments] == [
        ("验房清单 · 照片", "天花板.png"),
        ("验房清单 · 照片", "窗1.png"),
        ("验房清单 · 照片", "窗2.png"),
    ]


def test_uploads_for_an_item_field_are_checked_like_any_other(hsvc: CaseService) -> None:
    cid = at_inspection(hsvc)
    xu = hsvc.actor("demo", "xu")
    with pytest.raises(NotFound) as exc:  # not an attachment field of the items
        photo(hsvc, "xu", "checklist.description")
    assert "checklist.photos" in str(exc.value)
    with pytest.raises(UnsupportedType):  # a PDF where only images are taken
        photo(hsvc, "xu", "checklist.photos", b"%PDF-1.4\n%%EOF\n", "x.pdf")
    # an upload made for another field cannot go into an item, nor one of another case
    other = photo(hsvc, "xu", "repair_photos")
    item = {"room": "kitchen", "part": "floor", "result": "defect", "description": "空鼓"}
    with pytest.raises(InvalidInput) as bad:
        check(hsvc, cid, {**item, "photos": [other]})
    assert "item 1: photos: upload" in bad.value.details["errors"]["checklist"]
    assert (
        "was made for property-handover.repair_photos" in bad.value.details["errors"]["checklist"]
    )
    mine = photo(hsvc, "xu", "checklist.photos")
    check(hsvc, cid, {**item, "photos": [mine]})
    second = at_inspection(hsvc)
    with pytest.raises(InvalidInput) as taken:
        hsvc.act("demo", second, "record_check", xu, {"checklist": {**item, "photos": [mine]}}, 4)
    assert "belongs to another case" in taken.value.details["errors"]["checklist"]
    # someone without a role of the procedure may not upload at all
    with pytest.raises(NotAllowed):
        attachments.upload(
            hsvc,
            hsvc.actor("demo", "qian"),
            "property-handover",
            "checklist.photos",
            "p.png",
            io.BytesIO(PNG),
        )


def test_an_unclaimed_item_upload_is_swept(hsvc: CaseService) -> None:
    kept, orphan = photo(hsvc, "xu", "checklist.photos"), photo(hsvc, "xu", "checklist.photos")
    cid = at_inspection(hsvc)
    check(hsvc, cid, {"room": "kitchen", "part": "floor", "result": "ok", "photos": [kept]})
    hsvc.clock.advance(dt.timedelta(hours=25))
    assert attachments.sweep(hsvc, hsvc.clock.now()) == 1
    assert [u["id"] for u in hsvc.uploads("demo", cid)] == [kept]
    del orphan


def test_retention_deletes_the_files_of_a_cleared_lists_items(
    db: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEFU_ATTACHMENTS", str(tmp_path / "files"))
    rules, config = tmp_path / "rules", tmp_path / "config"
    rules.mkdir()
    config.mkdir()
    (rules / "retention").symlink_to(ROOT / "tests" / "packs" / "retention")
    (config / "docs.yaml").write_text(
        "kefu: 1\ncompany: docs\nname: 文档\npeople: {li: {name: 李, roles: [agent]}}\n"
        "procedures: {retention: {}}\n",
        encoding="utf-8",
    )
    svc = service(db, rules=rules, config=config)
    try:
        li = svc.actor("docs", "li")
        up = attachments.upload(svc, li, "retention", "visits.photo", "v.png", io.BytesIO(PNG))
        cid = svc.open_case(
            "docs",
            "retention",
            li,
            {"customer_name": "张三", "visits": [{"note": "上门", "photo": up.id}]},
        ).case.id
        svc.act("docs", cid, "close", li, {"result": "已修复"}, 1)
        svc.clock.advance(dt.timedelta(days=800))
        assert [d.fields for d in retention.run(svc, svc.clock.now())] == [
            ["customer_name", "visits"]
        ]
        assert svc.get_case("docs", cid).fields["visits"] is None
        assert svc.uploads("docs", cid) == []
        stored = Path(os.environ["KEFU_ATTACHMENTS"]) / "docs" / up.sha256[:2] / up.sha256
        assert not stored.exists()
    finally:
        svc.close()


def test_item_attachment_names_fit_the_upload_table(tmp_path: Path) -> None:
    pack = tmp_path / "long"
    pack.mkdir()
    (pack / "procedure.yaml").write_text(
        "kefu: 1\nprocedure: long\ntitle: t\nroles: {a: {label: a}}\n"
        "fields:\n"
        f"  {'l' * 40}:\n"
        "    type: list\n    label: l\n"
        f"    of: {{{'p' * 30}: {{type: attachment, label: p}}}}\n"
        "open: {role: a}\nstart: s\nsteps:\n"
        "  s: {label: s, role: a, actions: {x: {label: x, to: e}}}\n"
        "  e: {label: e, final: true}\n",
        encoding="utf-8",
    )
    lp, diags = load_pack(pack, extensions=installed())
    assert lp is None and [d.code for d in diags.errors] == ["K175"], [d.format() for d in diags]


# -- through the API -----------------------------------------------------------------------


def test_an_item_photo_through_the_api(hsvc: CaseService) -> None:
    with hsvc.db.write() as conn:
        for name in ("xu", "qian"):
            ensure_user(conn, name, name, hsvc.clock.now(), password=PASSWORD)
    app = create_app(hsvc, auth=AuthSettings(cookie_secure=False))
    sun = TestClient(app)
    r = sun.post(
        "/api/v1/auth/login", json={"username": "xu", "password": PASSWORD, "company": "demo"}
    )
    assert r.status_code == 200, r.text
    r = sun.post(
        "/api/v1/attachments/property-handover/checklist.photos",
        files={"file": ("裂缝.png", PNG, "image/png")},
    )
    assert r.status_code == 201, r.text
    up = r.json()
    cid = at_inspection(hsvc)
    version = hsvc.get_case("demo", cid).version
    r = sun.post(
        f"/api/v1/cases/{cid}/actions/record_check",
        json={
            "expected_version": version,
            "fields": {
                "checklist": {
                    "room": "living",
                    "part": "wall",
                    "result": "defect",
                    "description": "墙面裂缝",
                    "photos": [up["id"]],
                }
            },
        },
    )
    assert r.status_code == 200, r.text
    item = r.json()["case"]["fields"]["checklist"][0]
    assert item["photos"][0]["sha256"] == up["sha256"] and item["photos"][0]["name"] == "裂缝.png"
    got = sun.get(f"/api/v1/attachments/{up['id']}")
    assert got.status_code == 200 and got.content == PNG
    r = sun.post(
        "/api/v1/attachments/property-handover/checklist.room", files={"file": ("x.png", PNG)}
    )
    assert r.status_code == 404 and "checklist.photos" in r.json()["detail"]


def test_the_owner_signs_through_the_portal_and_the_records_show_both_signatures(
    hsvc: CaseService,
) -> None:
    cid = at_inspection(hsvc)
    check(hsvc, cid, {"room": "living", "part": "wall", "result": "ok"})
    act(hsvc, cid, "inspection_done", "xu", {})
    act(
        hsvc,
        cid,
        "prepare_certificate",
        "lin",
        {"certificate_no": "JF-1", "accepted_on": "2026-11-10"},
    )
    (msg,) = [m for m in hsvc.outbox("demo", cid) if m["template"] == "portal.link"]
    assert msg["channel"] == "sms" and msg["payload"]["address"] == "13911112222"  # no e-mail
    act(hsvc, cid, "sign_certificate", "lin", {})
    owner = TestClient(create_app(hsvc, auth=AuthSettings(cookie_secure=False)))
    r = owner.get(msg["payload"]["link"].split("8000", 1)[1], follow_redirects=False)
    assert r.status_code == 303
    token = csrf(owner, "/portal/demo/case")
    r = owner.post("/portal/demo/case/sign_certificate", data={"_csrf": token})
    assert r.status_code == 200, r.text
    assert hsvc.get_case("demo", cid).step == "delivery"
    sigs = hsvc.signatures("demo", cid)
    assert sorted(s["role"] for s in sigs if s["void_at"] is None) == ["customer", "developer"]
    act(
        hsvc,
        cid,
        "deliver",
        "wang",
        {"delivered_on": "2026-11-10", "keys_handed": 4, "water_meter": 1.5},
    )
    doc, html = records.render_html(hsvc, "demo", cid, "handover_certificate")
    assert [(s["role"], s["status"]) for s in doc.signatures] == [
        ("开发商代表", "有效"),  # in the order they signed
        ("业主", "有效"),
    ]
    assert "JF-1" in html and "阳光花园3栋1201" in html
    _, slip = records.render_html(hsvc, "demo", cid, "handover_slip")
    assert "交房单" in slip and "购房合同" in slip and "已交付" in slip
    assert records.render_pdf(slip).startswith(b"%PDF")
    doc, _ = records.render_html(hsvc, "demo", cid, "handover_notice")
    assert doc.title == "交房通知书"

    # 第七步: a repair request with a photo: the repair desk's case gets its own copy
    up = photo(hsvc, "wang", "repair_photos", PNG, "地漏.png")
    res = act(
        hsvc,
        cid,
        "report_repair",
        "wang",
        {
            "repair_kind": "fault",
            "repair_channel": "phone",
            "repair_symptom": "地漏返味",
            "repair_photos": [up],
        },
    )
    (rid,) = res.linked
    repair = hsvc.get_case("demo", rid)
    assert repair.procedure == "repair-desk" and repair.fields["address"] == "阳光花园3栋1201"
    assert [p["name"] for p in repair.fields["fault_photos"]] == ["地漏.png"]
    assert [u["field"] for u in hsvc.uploads("demo", rid)] == ["fault_photos"]
    # the repair case names the unit's case it came from, with the link's name
    assert [(x["direction"], x["link"], x["id"]) for x in linked_cases(hsvc, "demo", rid)] == [
        ("from", "warranty_repair", cid)
    ]


def test_the_demo_delivers_its_sms_notices_to_the_log(hsvc: CaseService) -> None:
    """The demo company has no SMS gateway: its notices by SMS go to the log channel and
    are sent, instead of waiting for a channel no plugin gives and ending failed."""
    wang = hsvc.actor("demo", "wang")
    cid = hsvc.open_case("demo", "property-handover", wang, OWNER).case.id
    by_sms = {k: v for k, v in NOTICE.items() if k != "call_note"} | {"notice_channel": "sms"}
    hsvc.act("demo", cid, "send_notice", wang, by_sms, 1)
    (notice,) = [m for m in hsvc.outbox("demo", cid) if m["template"] == "handover.notice"]
    assert notice["channel"] == "sms"
    report = outbox.deliver_pending(hsvc, installed().channels, now=hsvc.clock.now())
    assert (report.failed, report.retried) == (0, 0) and report.sent >= 1
    (after,) = [m for m in hsvc.outbox("demo", cid) if m["template"] == "handover.notice"]
    assert after["status"] == "sent", after
