"""Signatures and attachments through the case service, on SQLite and PostgreSQL.

The QP pack's quality manager signs the 《客户投诉闭环跟踪单》 (QP/XX-A-2021 §5.1.3.1);
the countersign test pack asks quality, production and R&D to countersign a meeting's
conclusions (深圳 5.2.4); the repair desk takes photos of the fault.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from api.auth import AuthSettings
from core import hookimpl
from core.cases import attachments, exports, records, retention
from core.cases.reports import run_report
from core.cases.service import CaseService
from core.cli import cli
from core.errors import InvalidInput, NotAllowed, TooLarge, UnsupportedType
from core.runtime.plugins import PluginError, build_registry, installed, plugin_manager
from core.runtime.users import ensure_user
from core.spec.loading import load_pack
from tests.helpers import FIXTURES, PNG, documents_rules, service

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def dsvc(db: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CaseService]:
    monkeypatch.setenv("KEFU_ATTACHMENTS", str(tmp_path / "files"))
    s = service(db, rules=documents_rules(tmp_path), config=FIXTURES / "documents")
    yield s
    s.close()


def qp_at_review(svc: CaseService) -> int:
    li, wang = svc.actor("docs", "li"), svc.actor("docs", "wang")
    cid = svc.open_case(
        "docs",
        "qp-complaint",
        li,
        {
            "customer_name": "华东汽配",
            "content": "quality",
            "urgency": "high",
            "description": "批次产品尺寸超差",
        },
    ).case.id
    svc.act("docs", cid, "organise", li, {"responsible_dept": "生产部"}, 1)
    svc.act(
        "docs",
        cid,
        "submit_form",
        wang,
        {
            "cause": "模具磨损",
            "corrective_action": "更换模具并全检",
            "completion_date": "2026-12-20",
        },
        2,
    )
    return cid


def test_the_quality_manager_signs_and_a_later_change_voids_it(dsvc: CaseService) -> None:
    cid = qp_at_review(dsvc)
    zhao = dsvc.actor("docs", "zhao")
    dsvc.act("docs", cid, "approve", zhao, {"review_comment": "同意", "tracker": "zhao"}, 3)
    sigs = dsvc.signatures("docs", cid)
    assert [(s["name"], s["username"], s["role"], s["void_at"]) for s in sigs] == [
        ("quality_review", "zhao", "quality_manager", None)
    ]
    kinds = [e["kind"] for e in dsvc.journal("docs", cid)]
    assert "signed" in kinds
    signed = next(e for e in dsvc.journal("docs", cid) if e["kind"] == "signed")
    assert signed["data"]["hash"] == sigs[0]["fields_hash"]
    # the signature names the form's fields, and what they were
    assert signed["data"]["covers"] == [
        "cause",
        "corrective_action",
        "completion_date",
        "review_comment",
    ]


def meeting(svc: CaseService, photos: Any = None) -> int:
    zhao = svc.actor("docs", "zhao")
    data: dict[str, Any] = {"subject": "批次尺寸超差原因不明"}
    if photos is not None:
        data["photos"] = photos
    cid = svc.open_case("docs", "countersign", zhao, data).case.id
    svc.act(
        "docs",
        cid,
        "conclude",
        zhao,
        {"conclusion": "模具磨损所致", "measures": [{"what": "更换模具", "who": "生产部"}]},
        1,
    )
    return cid


def test_a_countersignature_needs_every_role_in_any_order(dsvc: CaseService) -> None:
    cid = meeting(dsvc)
    liu, chen, zhao = (dsvc.actor("docs", n) for n in ("liu", "chen", "zhao"))
    dsvc.act("docs", cid, "sign_off", chen, {}, 2)  # R&D first
    assert dsvc.get_case("docs", cid).step == "countersign"
    dsvc.act("docs", cid, "sign_off", liu, {}, 3)  # then production
    assert dsvc.get_case("docs", cid).step == "countersign"
    dsvc.act("docs", cid, "sign_off", zhao, {}, 4)  # quality last: complete
    case = dsvc.get_case("docs", cid)
    assert case.step == "agreed" and case.status == "closed"
    assert sorted(s["role"] for s in dsvc.signatures("docs", cid)) == [
        "production",
        "quality_head",
        "rd",
    ]


def test_nobody_countersigns_twice(dsvc: CaseService) -> None:
    cid = meeting(dsvc)
    wang, liu = dsvc.actor("docs", "wang"), dsvc.actor("docs", "liu")
    dsvc.act("docs", cid, "sign_off", wang, {}, 2)  # wang holds production and R&D
    with pytest.raises(NotAllowed, match="signed 'conclusions' already"):
        dsvc.act("docs", cid, "sign_off", wang, {}, 3)
    # a role already signed for cannot be signed again by someone else either
    with pytest.raises(NotAllowed, match="valid signature for production"):
        dsvc.act("docs", cid, "sign_off", liu, {}, 3)
    assert len(dsvc.signatures("docs", cid)) == 1


def test_changing_the_conclusions_voids_the_signatures_given(dsvc: CaseService) -> None:
    cid = meeting(dsvc)
    chen, liu, zhao = (dsvc.actor("docs", n) for n in ("chen", "liu", "zhao"))
    dsvc.act("docs", cid, "sign_off", chen, {}, 2)
    dsvc.act("docs", cid, "sign_off", liu, {}, 3)
    dsvc.act("docs", cid, "amend", zhao, {"conclusion": "模具磨损及材料批次所致"}, 4)
    sigs = dsvc.signatures("docs", cid)
    assert all(s["void_at"] is not None for s in sigs) and len(sigs) == 2
    assert all(s["void_reason"] == "changed after signing: conclusion" for s in sigs)
    voids = [e for e in dsvc.journal("docs", cid) if e["kind"] == "signature_void"]
    assert sorted(e["data"]["signed_by"] for e in voids) == ["chen", "liu"]
    # the last signer does not complete it: the void ones count for nothing
    dsvc.act("docs", cid, "sign_off", zhao, {}, 5)
    assert dsvc.get_case("docs", cid).step == "countersign"
    # and the same people may sign the new conclusions
    dsvc.act("docs", cid, "sign_off", chen, {}, 6)
    dsvc.act("docs", cid, "sign_off", liu, {}, 7)
    assert dsvc.get_case("docs", cid).step == "agreed"


def upload(svc: CaseService, user: str, field: str, data: bytes, name: str = "f.png") -> Any:
    return attachments.upload(
        svc, svc.actor("docs", user), "countersign", field, name, io.BytesIO(data)
    )


def test_an_upload_is_stored_by_its_hash_and_the_journal_records_it(dsvc: CaseService) -> None:
    up = upload(dsvc, "zhao", "photos", PNG, "../../etc/现场.png")
    assert up.type == "image/png" and up.size == len(PNG) and up.name == "现场.png"
    stored = Path(os.environ["KEFU_ATTACHMENTS"]) / "docs" / up.sha256[:2] / up.sha256
    assert stored.read_bytes() == PNG
    cid = meeting(dsvc, photos=[up.id])
    case = dsvc.get_case("docs", cid)
    assert case.fields["photos"] == [up.stored()]
    opened = dsvc.journal("docs", cid)[0]
    assert opened["data"]["fields"]["photos"][0]["sha256"] == up.sha256
    assert [u["id"] for u in dsvc.uploads("docs", cid)] == [up.id]
    # a claimed upload cannot be given to another case
    with pytest.raises(InvalidInput) as exc:
        meeting(dsvc, photos=[up.id])
    assert "belongs to another case" in exc.value.details["errors"]["photos"]


def test_a_file_given_by_an_action_is_kept_on_the_case_as_the_file(dsvc: CaseService) -> None:
    cid = dsvc.open_case(
        "docs", "countersign", dsvc.actor("docs", "zhao"), {"subject": "x"}
    ).case.id
    up = upload(dsvc, "zhao", "minutes", b"meeting minutes\n", "minutes.txt")
    zhao = dsvc.actor("docs", "zhao")
    dsvc.act("docs", cid, "conclude", zhao, {"conclusion": "ok", "minutes": up.id}, 1)
    # the case row holds what the journal holds: name, size, type and hash, not the id alone
    assert dsvc.get_case("docs", cid).fields["minutes"] == up.stored()
    acted = dsvc.journal("docs", cid)[-1]
    assert acted["data"]["fields"]["minutes"] == up.stored()


def test_too_large_or_forged_uploads_store_nothing(dsvc: CaseService) -> None:
    folder = Path(os.environ["KEFU_ATTACHMENTS"])
    with pytest.raises(TooLarge):
        upload(dsvc, "zhao", "minutes", b"%PDF-1.4\n" + b"x" * 3000, "minutes.pdf")
    # an executable named .pdf: the content decides, not the name
    with pytest.raises(UnsupportedType) as exc:
        upload(dsvc, "zhao", "minutes", b"\x7fELF\x02\x01\x01" + b"\0" * 100, "minutes.pdf")
    assert exc.value.details["sniffed"] == "application/x-executable" or exc.value.details[
        "sniffed"
    ].startswith("application/")
    with pytest.raises(UnsupportedType):  # HTML posing as a PNG
        upload(dsvc, "zhao", "photos", b"<html><script>alert(1)</script></html>", "x.png")
    stored = [p for p in folder.rglob("*") if p.is_file()]
    assert stored == []
    with dsvc.db.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM attachment").scalar() == 0


def test_unclaimed_uploads_are_swept_with_their_content(dsvc: CaseService) -> None:
    import datetime as dt

    kept = upload(dsvc, "zhao", "photos", PNG)
    cid = meeting(dsvc, photos=[kept.id])
    orphan = upload(dsvc, "zhao", "photos", PNG + b"\0")
    dsvc.clock.advance(dt.timedelta(hours=23))
    assert attachments.sweep(dsvc, dsvc.clock.now()) == 0
    dsvc.clock.advance(dt.timedelta(hours=2))
    assert attachments.sweep(dsvc, dsvc.clock.now()) == 1
    folder = Path(os.environ["KEFU_ATTACHMENTS"]) / "docs"
    assert not (folder / orphan.sha256[:2] / orphan.sha256).exists()
    assert (folder / kept.sha256[:2] / kept.sha256).exists()
    assert [u["id"] for u in dsvc.uploads("docs", cid)] == [kept.id]


# -- through the API ---------------------------------------------------------------------


@pytest.fixture
def login(dsvc: CaseService) -> Any:
    from litestar.testing import TestClient

    from tests.helpers import PASSWORD

    with dsvc.db.write() as conn:
        for name in ("zhao", "li", "chen", "mei"):
            ensure_user(conn, name, name, dsvc.clock.now(), password=PASSWORD)
    app = create_app(dsvc, auth=AuthSettings(cookie_secure=False))

    def make(user: str) -> Any:
        c = TestClient(app)
        r = c.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return c

    return make


def problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"] == f"urn:kefu:problem:{code}", body
    return dict(body)


def test_upload_attach_and_download_through_the_api(dsvc: CaseService, login: Any) -> None:
    zhao = login("zhao")
    r = zhao.post(
        "/api/v1/attachments/countersign/photos", files={"file": ("现场照片.png", PNG, "text/html")}
    )
    assert r.status_code == 201, r.text
    up = r.json()
    assert up["type"] == "image/png" and up["name"] == "现场照片.png"
    r = zhao.post(
        "/api/v1/cases",
        json={"procedure": "countersign", "fields": {"subject": "测试", "photos": [up["id"]]}},
    )
    assert r.status_code == 201, r.text
    assert r.json()["case"]["fields"]["photos"][0]["sha256"] == up["sha256"]
    got = zhao.get(f"/api/v1/attachments/{up['id']}")
    assert got.status_code == 200 and got.content == PNG
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["x-content-type-options"] == "nosniff"
    disposition = got.headers["content-disposition"]
    assert disposition.startswith("attachment;") and "%E7%8E%B0" in disposition
    # someone without a role of the procedure: 403; another company: 404
    problem(login("li").get(f"/api/v1/attachments/{up['id']}"), 403, "not-allowed")
    problem(login("mei").get(f"/api/v1/attachments/{up['id']}"), 404, "not-found")


def test_oversized_and_forged_uploads_get_413_and_415(dsvc: CaseService, login: Any) -> None:
    zhao = login("zhao")
    big = b"%PDF-1.4\n" + b"0" * 200_000
    r = zhao.post("/api/v1/attachments/countersign/minutes", files={"file": ("m.pdf", big)})
    body = problem(r, 413, "too-large")
    assert "minutes" in body["detail"]
    fake = b"MZ\x90\x00" + b"\0" * 500  # a Windows executable named .pdf
    r = zhao.post(
        "/api/v1/attachments/countersign/minutes",
        files={"file": ("m.pdf", fake, "application/pdf")},
    )
    problem(r, 415, "unsupported-media-type")
    problem(
        zhao.post("/api/v1/attachments/countersign/subject", files={"file": ("a", b"x")}),
        404,
        "not-found",
    )
    problem(
        zhao.post("/api/v1/attachments/countersign/photos", data={"x": "1"}), 422, "invalid-input"
    )
    with dsvc.db.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM attachment").scalar() == 0
    folder = Path(os.environ["KEFU_ATTACHMENTS"])
    assert [p for p in folder.rglob("*") if p.is_file()] == []


class MemoryBlobs:
    """One company's store keeping bytes in a dict (as an S3 store would keep objects)."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def save(self, digest: str, source: Path) -> None:
        self.blobs[digest] = source.read_bytes()
        source.unlink()

    def open(self, digest: str) -> io.BytesIO:
        if digest not in self.blobs:
            raise FileNotFoundError(digest)
        return io.BytesIO(self.blobs[digest])

    def delete(self, digest: str) -> None:
        self.blobs.pop(digest, None)


class MemoryStore:
    """The plugin's store: ``open`` gives a company its blobs."""

    name = "memory"

    def __init__(self) -> None:
        self.opened: list[tuple[str, dict[str, Any]]] = []
        self.companies: dict[str, MemoryBlobs] = {}

    def open(self, company: str, settings: dict[str, Any]) -> MemoryBlobs:
        self.opened.append((company, settings))
        return self.companies.setdefault(company, MemoryBlobs())


def test_hook_attachment_stores(db: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:

    store = MemoryStore()

    class Plugin:
        @hookimpl
        def kefu_attachment_stores(self) -> list[Any]:
            return [store]

    pm, infos = plugin_manager()
    pm.register(Plugin(), name="test-store")
    reg = build_registry(pm, infos)
    assert reg.stores["memory"] is store and reg.plugin_of("attachment store", "memory")
    monkeypatch.setenv("KEFU_ATTACHMENTS", str(tmp_path / "files"))
    config = tmp_path / "config"
    config.mkdir()
    (config / "docs.yaml").write_text(
        (FIXTURES / "documents" / "company.yaml").read_text(encoding="utf-8")
        + "\nattachments: {store: memory, settings: {bucket: kefu-docs}}\n",
        encoding="utf-8",
    )
    svc = service(db, rules=documents_rules(tmp_path), config=config, extensions=reg)
    try:
        up = upload(svc, "zhao", "photos", PNG)
        assert store.opened == [("docs", {"bucket": "kefu-docs"})]
        assert store.companies["docs"].blobs == {up.sha256: PNG}
        assert not [p for p in (tmp_path / "files").rglob("*") if p.is_file()]
        row = attachments.find(svc, svc.actor("docs", "zhao"), up.id)
        assert attachments.content(svc, "docs", row).read() == PNG
        svc.clock.advance(__import__("datetime").timedelta(days=2))
        assert attachments.sweep(svc, svc.clock.now()) == 1  # never claimed
        assert store.companies["docs"].blobs == {}
    finally:
        svc.close()

    class Dup:
        @hookimpl
        def kefu_attachment_stores(self) -> list[Any]:
            return [MemoryStore()]

    pm, infos = plugin_manager()
    pm.register(Dup(), name="dup-a")
    pm.register(Plugin(), name="dup-b")
    with pytest.raises(PluginError, match="attachment store 'memory' is registered by both"):
        build_registry(pm, infos)


# -- records -------------------------------------------------------------------------------

#: where the record screenshots go (pdftoppm PNGs of the PDFs the tests render)
ARTEFACTS = Path(os.environ.get("KEFU_TEST_ARTEFACTS") or ROOT / "var" / "test-artefacts")


def pdf_text(pdf: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf)).pages)


def screenshot(pdf: bytes, name: str) -> None:
    """The record's pages as PNGs for a person to look at (when pdftoppm is installed)."""
    import shutil
    import subprocess

    if shutil.which("pdftoppm") is None:
        return
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    source = ARTEFACTS / f"{name}.pdf"
    source.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "80", "-png", str(source), str(ARTEFACTS / name)], check=True)


def signed_qp(svc: CaseService) -> int:
    cid = qp_at_review(svc)
    svc.act(
        "docs",
        cid,
        "approve",
        svc.actor("docs", "zhao"),
        {"review_comment": "同意,按期完成", "tracker": "zhao"},
        3,
    )
    return cid


def test_the_qp_tracking_form_renders_to_pdf_with_chinese_text(dsvc: CaseService) -> None:

    cid = signed_qp(dsvc)
    doc, html = records.render_html(dsvc, "docs", cid, "tracking_form")
    assert 'class="qr"' in html and "<svg" in html  # the code as a QR code too
    pdf = records.render_pdf(html)
    assert pdf.startswith(b"%PDF")
    screenshot(pdf, "qp-tracking-form")
    text = pdf_text(pdf)
    assert "客户投诉闭环跟踪单" in text
    assert "QP/XX-A-2021" in text  # the form number
    assert "赵经理" in text and "品质部经理审核签字" in text  # the signer and the signature
    assert "模具磨损" in text and "产品质量" in text  # a field value, a choice by its label
    assert doc.code in text.replace("\n", "")  # the verification code
    # page numbers: "page 1 of n" on the first page, "page n of n" on the last
    pages = re.search(r"第 1 页 / 共 (\d+) 页", text)
    assert pages, text
    assert f"第 {pages[1]} 页 / 共 {pages[1]} 页" in text


def test_a_record_pdf_embeds_its_fonts(dsvc: CaseService) -> None:
    from pypdf import PdfReader

    wang = dsvc.actor("docs", "li")
    cid = dsvc.open_case(
        "docs",
        "repair-desk",
        wang,
        {
            "channel": "phone",
            "customer_name": "张三",
            "phone": "13912345678",
            "symptom": "空调不制冷,室外机异响",
            "address": "上海市浦东新区",
        },
    ).case.id
    _, html = records.render_html(dsvc, "docs", cid, "repair_order")
    pdf = records.render_pdf(html)
    screenshot(pdf, "repair-order")
    text = pdf_text(pdf)
    assert "派工单" in text and "BX-JL-01" in text and "空调不制冷" in text
    fonts = []
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            descendants = font.get("/DescendantFonts")
            desc = (descendants[0].get_object() if descendants else font)["/FontDescriptor"]
            embedded = any(k in desc for k in ("/FontFile", "/FontFile2", "/FontFile3"))
            fonts.append((str(font["/BaseFont"]), embedded))
    assert fonts and all(embedded for _, embedded in fonts), fonts
    assert any("CJK" in name for name, _ in fonts), fonts


def test_a_signed_record_whose_field_changes_shows_the_signature_void(
    dsvc: CaseService,
) -> None:

    cid = meeting(dsvc)
    dsvc.act("docs", cid, "sign_off", dsvc.actor("docs", "chen"), {}, 2)
    before, _ = records.render_html(dsvc, "docs", cid, "meeting_record")
    assert [s["status"] for s in before.signatures if s["signer"]] == ["有效"]
    dsvc.act("docs", cid, "amend", dsvc.actor("docs", "zhao"), {"conclusion": "材料批次问题"}, 3)
    doc, html = records.render_html(dsvc, "docs", cid, "meeting_record")
    signed = [s for s in doc.signatures if s["signer"]]
    assert [(s["status"], s["void_reason"]) for s in signed] == [("作废", "签字后修改: 会议结论")]
    text = pdf_text(records.render_pdf(html))
    assert "作废" in text and "陈研发" in text
    # the list field is a table: its column labels and a cell
    assert "责任部门" in text and "更换模具" in text


def test_verification_codes_are_checked_against_the_journal(dsvc: CaseService) -> None:

    cid = signed_qp(dsvc)
    doc, _ = records.render_html(dsvc, "docs", cid, "tracking_form")
    ok = records.verify(dsvc, "docs", doc.code)
    assert ok.valid and ok.record == "tracking_form" and "still current" in ok.detail
    forged = doc.code[:-4] + ("0000" if not doc.code.endswith("0000") else "1111")
    assert not records.verify(dsvc, "docs", forged).valid
    assert not records.verify(dsvc, "docs", "hello").valid
    # the manager hands the tracking to someone else: the case changed after printing
    dsvc.act("docs", cid, "change_tracker", dsvc.actor("docs", "zhao"), {"tracker": "wang"}, 4)
    later = records.verify(dsvc, "docs", doc.code)
    assert later.valid and "changed afterwards" in later.detail
    # another company's journal did not issue it
    assert not records.verify(dsvc, "other", doc.code).valid


def test_records_through_the_api_and_the_cli(dsvc: CaseService, login: Any, tmp_path: Path) -> None:
    from click.testing import CliRunner

    cid = signed_qp(dsvc)
    zhao = login("zhao")
    listed = zhao.get(f"/api/v1/cases/{cid}/records").json()
    assert listed == [
        {
            "name": "tracking_form",
            "title": "客户投诉闭环跟踪单",
            "form_number": "QP/XX-A-2021",
            "revision": "A",
        }
    ]
    page = zhao.get(f"/api/v1/cases/{cid}/records/tracking_form")
    assert page.status_code == 200 and "客户投诉闭环跟踪单" in page.text
    assert "script-src" not in page.headers["content-security-policy"]
    pdf = zhao.get(f"/api/v1/cases/{cid}/records/tracking_form/pdf")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    problem(zhao.get(f"/api/v1/cases/{cid}/records/nope"), 404, "not-found")
    problem(login("mei").get(f"/api/v1/cases/{cid}/records/tracking_form"), 404, "not-found")
    code = next(
        line.split(":")[-1].strip()
        for line in page.text.splitlines()
        if "KF-" in line and "<b" in line
    )
    code = code.split(">")[1].split("<")[0]
    got = zhao.get(f"/api/v1/records/verify/{code}").json()
    assert got["valid"] is True and got["record"] == "tracking_form"
    assert zhao.get("/api/v1/records/verify/KF-1-1-0000000000000000").json()["valid"] is False
    # the command line checks the same code
    runner = CliRunner()
    r = runner.invoke(
        cli,
        ["records", "verify", code, "--company", "docs", "--database", dsvc.db.url],
        env=_cli_env(tmp_path),
    )
    assert r.exit_code == 0 and r.output.startswith("valid:"), r.output
    r = runner.invoke(
        cli,
        [
            "records",
            "verify",
            "KF-1-1-0000000000000000",
            "--company",
            "docs",
            "--database",
            dsvc.db.url,
        ],
        env=_cli_env(tmp_path),
    )
    assert r.exit_code == 1 and "NOT VALID" in r.output
    out = tmp_path / "form.pdf"
    number = dsvc.get_case("docs", cid).number
    r = runner.invoke(
        cli,
        [
            "records",
            "render",
            number,
            "tracking_form",
            "-o",
            str(out),
            "--company",
            "docs",
            "--database",
            dsvc.db.url,
        ],
        env=_cli_env(tmp_path),
    )
    assert r.exit_code == 0 and "KF-" in r.output, r.output
    assert "客户投诉闭环跟踪单" in pdf_text(out.read_bytes())


def _cli_env(tmp_path: Path) -> dict[str, str]:
    return {
        "KEFU_RULES_DIR": str(documents_rules(tmp_path)),
        "KEFU_CONFIG_DIR": str(FIXTURES / "documents"),
    }


def test_a_company_template_is_sandboxed_and_bounded(dsvc: CaseService, tmp_path: Path) -> None:

    cid = signed_qp(dsvc)
    folder = tmp_path / "tpl" / "qp-complaint"
    folder.mkdir(parents=True)
    lc = dsvc.catalog.companies["docs"]
    lc.path = tmp_path / "docs.yaml"  # the company's template folder is beside its config
    lc.company = lc.company.model_copy(
        update={"records": lc.company.records.model_copy(update={"templates": "tpl"})}
    )
    template = folder / "tracking_form.html"
    template.write_text("<h1>{{ doc.title }}</h1>{{ doc.case.number }}", encoding="utf-8")
    _, html = records.render_html(dsvc, "docs", cid, "tracking_form")
    assert html.startswith("<h1>客户投诉闭环跟踪单</h1>")
    template.write_text(
        "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}"
        "{% endfor %}{% endfor %}{% endfor %}",
        encoding="utf-8",
    )
    with pytest.raises(InvalidInput, match="took more than"):
        records.render_html(dsvc, "docs", cid, "tracking_form")
    template.write_text("{{ doc.__class__.__mro__ }}", encoding="utf-8")
    with pytest.raises(InvalidInput, match="template failed"):
        records.render_html(dsvc, "docs", cid, "tracking_form")
    template.write_text(
        "{% for a in range(1000) %}{% for b in range(1000) %}{{ 'x' * 1000 }}{% endfor %}"
        "{% endfor %}",
        encoding="utf-8",
    )
    with pytest.raises(InvalidInput, match="longer than"):
        records.render_html(dsvc, "docs", cid, "tracking_form")


# -- exports -------------------------------------------------------------------------------


def test_case_lists_export_as_xlsx_and_csv_with_labels(dsvc: CaseService, login: Any) -> None:
    from openpyxl import load_workbook

    cid = signed_qp(dsvc)
    li = dsvc.actor("docs", "li")
    dsvc.open_case(
        "docs",
        "qp-complaint",
        li,
        {
            "customer_name": '=HYPERLINK("http://x")',
            "content": "price",
            "urgency": "low",
            "description": "报价",
        },
    )
    zhao = login("zhao")
    r = zhao.get("/api/v1/exports/cases.xlsx?procedure=qp-complaint")
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"].startswith("attachment;")
    sheet = load_workbook(io.BytesIO(r.content)).active
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    assert rows[0][:4] == ["编号", "程序", "状态", "步骤"] and "投诉内容" in rows[0]
    number = dsvc.get_case("docs", cid).number
    first = next(row for row in rows if row[0] == number)
    assert first[rows[0].index("投诉内容")] == "产品质量"  # the choice's label
    assert first[rows[0].index("创建时间")] == "2026-11-02 09:00"  # company zone (+08:00)
    assert len(rows) == 3
    r = zhao.get("/api/v1/exports/cases.csv?procedure=qp-complaint&lang=en")
    text = r.content.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("Number,Procedure,Status,Step")
    assert "Product quality" in text
    assert "'=HYPERLINK" in text  # a typed formula stays text in a spreadsheet
    j = zhao.get(f"/api/v1/cases/{cid}/journal.csv")
    assert "signed" in j.content.decode("utf-8-sig")
    # someone who holds no qp role exports none of its cases; another company none at all
    r = login("chen").get("/api/v1/exports/cases.csv")
    assert number not in r.content.decode("utf-8-sig")
    problem(login("mei").get(f"/api/v1/cases/{cid}/journal.xlsx"), 404, "not-found")


def test_a_report_exports_as_xlsx(dsvc: CaseService, login: Any) -> None:
    from openpyxl import load_workbook

    zhao = login("zhao")
    reports = zhao.get("/api/v1/reports").json()
    assert reports, "the bundled plugins register reports"
    name = reports[0]["name"]
    r = zhao.get(f"/api/v1/reports/{name}/export.xlsx")
    assert r.status_code == 200, r.text
    assert load_workbook(io.BytesIO(r.content)).active.max_row >= 1


def test_document_queries_use_indexes(dsvc: CaseService, login: Any) -> None:
    """Uploads, signatures, records, verification and exports read through indexes."""
    import re

    from tests.integration import test_query_plans as plans

    tables = ("kefu_case", "journal", "attachment", "signature", "case_link")
    monkey = pytest.MonkeyPatch()
    monkey.setattr(plans, "BIG_TABLES", tables)
    monkey.setattr(plans, "SEQ_SCAN", re.compile(r"Seq Scan on (" + "|".join(tables) + r")\b"))

    def work() -> None:
        up = upload(dsvc, "zhao", "photos", PNG)
        cid = meeting(dsvc, photos=[up.id])
        for name in ("chen", "liu"):
            dsvc.act(
                "docs",
                cid,
                "sign_off",
                dsvc.actor("docs", name),
                {},
                dsvc.get_case("docs", cid).version,
            )
        dsvc.act(
            "docs",
            cid,
            "amend",
            dsvc.actor("docs", "zhao"),
            {"conclusion": "改"},
            dsvc.get_case("docs", cid).version,
        )
        doc, _ = records.render_html(dsvc, "docs", cid, "meeting_record")
        records.verify(dsvc, "docs", doc.code)
        attachments.find(dsvc, dsvc.actor("docs", "zhao"), up.id)
        for _ in exports.chunks(
            exports.cases(dsvc, dsvc.actor("docs", "zhao"), "countersign"), "csv"
        ):
            pass
        attachments.sweep(dsvc, dsvc.clock.now())
        inspector, contractor = dsvc.actor("docs", "zhao"), dsvc.actor("docs", "sun")
        parent = dsvc.open_case("docs", "handover-inspection", inspector, {"unit": "1"}).case.id
        res = dsvc.act(
            "docs", parent, "record_defects", inspector, {"defects": [{"defect": "x"}]}, 1
        )
        dsvc.act("docs", res.linked[0], "fixed", contractor, {}, 1)
        records.render_html(dsvc, "docs", parent, "inspection_record")

    try:
        problems = plans.explain_all(dsvc, work)
    finally:
        monkey.undo()
    assert not problems, "\n".join(problems)


# -- KPI reports ---------------------------------------------------------------------------


def test_the_monthly_complaint_report_counts_and_draws(
    dsvc: CaseService, login: Any, tmp_path: Path
) -> None:
    import datetime as dt

    li = dsvc.actor("docs", "li")

    def complaint(content: str, urgency: str) -> None:
        dsvc.open_case(
            "docs",
            "qp-complaint",
            li,
            {"customer_name": "客户", "content": content, "urgency": urgency, "description": "x"},
        )

    for content, urgency in [
        ("quality", "high"),
        ("quality", "low"),
        ("quality", "low"),
        ("price", "low"),
    ]:
        complaint(content, urgency)
    dsvc.clock.advance(dt.timedelta(days=30))  # December (Asia/Shanghai)
    complaint("delivery", "medium")
    complaint("price", "low")
    result = run_report(dsvc, "docs", "complaints-monthly", {})
    assert result.columns == ["月份", "投诉内容", "高", "中", "低", "合计", "召开沟通会"]
    assert result.rows == [
        ["2026-11", "价格问题", 0, 0, 1, 1, "否"],
        ["2026-11", "产品质量", 1, 0, 2, 3, "是"],  # 3 of one kind, and one high
        ["2026-12", "产品交货", 0, 1, 0, 1, "否"],
        ["2026-12", "价格问题", 0, 0, 1, 1, "否"],
    ]
    only_dec = run_report(dsvc, "docs", "complaints-monthly", {"since": "2026-12"})
    assert [r[0] for r in only_dec.rows] == ["2026-12", "2026-12"]
    assert result.chart is not None and result.chart.labels == ["2026-11", "2026-12"]
    assert result.chart.series["产品质量"] == [3.0, 0.0]
    zhao = login("li")
    r = zhao.get("/api/v1/reports/complaints-monthly/chart")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in r.text and "产品质量" in r.text and "<script" not in r.text
    assert not __import__("re").search(r'(href|src)="https?:', r.text)  # nothing fetched
    problem(zhao.get("/api/v1/reports/complaints-monthly?since=last-year"), 422, "invalid-input")
    # and as a PDF with the chart, from the command line
    from click.testing import CliRunner

    out = tmp_path / "monthly.pdf"
    r2 = CliRunner().invoke(
        cli,
        [
            "report",
            "complaints-monthly",
            "--company",
            "docs",
            "--format",
            "pdf",
            "-o",
            str(out),
            "--database",
            dsvc.db.url,
        ],
        env=_cli_env(tmp_path),
    )
    assert r2.exit_code == 0, r2.output
    text = pdf_text(out.read_bytes())
    assert "产品质量" in text and "2026-11" in text
    screenshot(out.read_bytes(), "complaints-monthly")


# -- retention -----------------------------------------------------------------------------


def test_retention_clears_what_it_should_and_nothing_under_hold(
    dsvc: CaseService, tmp_path: Path
) -> None:
    import datetime as dt

    li = dsvc.actor("docs", "li")
    photo = attachments.upload(dsvc, li, "retention", "photo", "p.png", io.BytesIO(PNG))

    def case(hold: bool, photo_id: int | None = None) -> int:
        data: dict[str, Any] = {"customer_name": "张三", "phone": "13912345678"}
        if photo_id:
            data["photo"] = photo_id
        cid = dsvc.open_case("docs", "retention", li, data).case.id
        version = 1
        if hold:
            dsvc.act("docs", cid, "hold", li, {"legal_hold": True}, 1)
            version = 2
        dsvc.act("docs", cid, "close", li, {"result": "已修复"}, version)
        return cid

    plain, held = case(False, photo.id), case(True)
    still_open = dsvc.open_case("docs", "retention", li, {"customer_name": "李四"}).case.id
    # a year later: the service record must be kept two years, so nothing is due yet
    dsvc.clock.advance(dt.timedelta(days=400))
    assert retention.due(dsvc, dsvc.clock.now()) == []
    dsvc.clock.advance(dt.timedelta(days=400))
    due = retention.due(dsvc, dsvc.clock.now())
    assert [(d.case_id, d.fields) for d in due] == [(plain, ["customer_name", "phone", "photo"])]
    # the command line's dry run lists it and changes nothing
    from click.testing import CliRunner

    r = CliRunner().invoke(
        cli,
        [
            "retention",
            "--dry-run",
            "--at",
            dsvc.clock.now().date().isoformat(),
            "--company",
            "docs",
            "--database",
            dsvc.db.url,
        ],
        env=_cli_env(tmp_path),
    )
    assert r.exit_code == 0 and "would clear customer_name, phone, photo" in r.output, r.output
    assert dsvc.get_case("docs", plain).fields["customer_name"] == "张三"
    done = retention.run(dsvc, dsvc.clock.now())
    assert [d.case_id for d in done] == [plain]
    fields = dsvc.get_case("docs", plain).fields
    assert fields["customer_name"] is None and fields["phone"] is None and fields["photo"] is None
    assert fields["result"] == "已修复"  # not personal: kept
    assert dsvc.journal("docs", plain)[-1]["kind"] == "retention"
    assert dsvc.uploads("docs", plain) == []
    stored = Path(os.environ["KEFU_ATTACHMENTS"]) / "docs" / photo.sha256[:2] / photo.sha256
    assert not stored.exists()
    # the held case and the open one keep everything; a second run finds nothing
    assert dsvc.get_case("docs", held).fields["customer_name"] == "张三"
    assert dsvc.get_case("docs", still_open).fields["customer_name"] == "李四"
    assert retention.run(dsvc, dsvc.clock.now()) == []


def test_a_broken_pack_template_is_a_located_diagnostic(tmp_path: Path) -> None:
    import shutil

    pack = tmp_path / "countersign"
    shutil.copytree(ROOT / "tests" / "packs" / "countersign", pack)
    (pack / "records").mkdir()
    (pack / "records" / "meeting_record.html").write_text(
        "<h1>{{ doc.title }}</h1>\n{% for f in doc.fields %}\n{{ f.label }\n", encoding="utf-8"
    )
    lp, diags = load_pack(pack, extensions=installed())
    found = [d for d in diags if d.code == "K164"]
    assert lp is None and found, [d.format() for d in diags]
    assert found[0].file.endswith("records/meeting_record.html") and found[0].line == 3


def test_a_record_lists_the_cases_opened_from_its_case(db: Any, tmp_path: Path) -> None:
    from tests.integration.test_scenarios import write_linked_packs

    rules = tmp_path / "rules"
    rules.mkdir()
    write_linked_packs(rules)
    text = (rules / "parent" / "procedure.yaml").read_text(encoding="utf-8")
    (rules / "parent" / "procedure.yaml").write_text(
        text + "records:\n  summary:\n    title: 汇总\n    fields: [summary]\n", encoding="utf-8"
    )
    config = tmp_path / "config"
    config.mkdir()
    (config / "co.yaml").write_text(
        "kefu: 1\ncompany: co\nname: 公司\npeople: {ann: {name: 安, roles: [agent]}}\n"
        "procedures: {parent: {}, child: {}}\n",
        encoding="utf-8",
    )
    svc = service(db, rules=rules, config=config)
    try:
        ann = svc.actor("co", "ann")
        cid = svc.open_case("co", "parent", ann, {"summary": "漏水"}).case.id
        svc.act("co", cid, "finish", ann, {"escalate": True}, 1)
        doc, html = records.render_html(svc, "co", cid, "summary")
        assert [(x["link"], x["procedure"], x["step"]) for x in doc.linked] == [
            ("follow-up", "Child", "Review")
        ]
        assert "关联案件" in html and doc.linked[0]["number"] in html
    finally:
        svc.close()


def test_hostile_uploads_get_problems_not_500s(dsvc: CaseService, login: Any) -> None:
    zhao = login("zhao")
    url = "/api/v1/attachments/countersign/photos"
    # a name with a NUL, control characters, a path and 600 characters: kept for display,
    # cleaned (PostgreSQL refuses NUL in text)
    name = "../../x\x00\x07" + "照" * 600 + ".png"
    r = zhao.post(url, files={"file": (name, PNG, "image/png")})
    assert r.status_code == 201, r.text
    stored = r.json()["name"]
    assert "\x00" not in stored and "/" not in stored and len(stored) <= 255
    # an empty file, a polyglot of HTML with a PNG name, a body that is not multipart
    problem(
        zhao.post(url, files={"file": ("e.png", b"", "image/png")}), 415, "unsupported-media-type"
    )
    problem(
        zhao.post(url, content=b"just bytes", headers={"Content-Type": "image/png"}),
        422,
        "invalid-input",
    )
    # an id that is not an upload, and an upload given to a field it was not made for
    up = r.json()["id"]
    r = zhao.post(
        "/api/v1/cases",
        json={"procedure": "countersign", "fields": {"subject": "x", "photos": [up + 1000]}},
    )
    body = problem(r, 422, "invalid-input")
    assert "there is no upload" in body["errors"]["photos"]
    r = zhao.post(
        "/api/v1/cases",
        json={"procedure": "countersign", "fields": {"subject": "x", "photos": ["a; drop"]}},
    )
    problem(r, 422, "invalid-input")
    problem(zhao.get("/api/v1/attachments/0"), 422, "malformed-request")


# -- sub-cases -----------------------------------------------------------------------------


def test_one_case_per_defect_and_the_step_that_waits_for_them(dsvc: CaseService) -> None:

    zhao, sun = dsvc.actor("docs", "zhao"), dsvc.actor("docs", "sun")
    cid = dsvc.open_case("docs", "handover-inspection", zhao, {"unit": "3-1201"}).case.id
    defects = [
        {"room": "客厅", "defect": "墙面开裂"},
        {"room": "主卧", "defect": "窗框渗水"},
        {"room": "厨房", "defect": "地砖空鼓"},
    ]
    res = dsvc.act("docs", cid, "record_defects", zhao, {"defects": defects}, 1)
    assert res.case.step == "rectify" and len(res.linked) == 3
    children = [dsvc.get_case("docs", c) for c in res.linked]
    assert sorted(c.fields["defect"] for c in children) == ["地砖空鼓", "墙面开裂", "窗框渗水"]
    assert {c.fields["unit"] for c in children} == {"3-1201"}
    # the contractor closes them in any order; the parent waits for the last one
    for child in (children[2], children[0]):
        dsvc.act("docs", child.id, "fixed", sun, {"fix_note": "已修复"}, child.version)
        assert dsvc.get_case("docs", cid).step == "rectify"
    dsvc.act("docs", children[1].id, "fixed", sun, {"fix_note": "已修复"}, children[1].version)
    parent = dsvc.get_case("docs", cid)
    assert parent.step == "reinspect"
    entry = dsvc.journal("docs", cid)[-2]
    assert entry["kind"] == "linked_closed" and entry["data"]["last"] == children[1].id
    # the parent's record lists its children
    doc, _ = records.render_html(dsvc, "docs", cid, "inspection_record")
    assert [x["status"] for x in doc.linked] == ["已关闭"] * 3


def test_an_upload_is_claimed_only_by_the_person_who_made_it(dsvc: CaseService) -> None:
    """Upload ids count up: another agent guessing one cannot take li's photo into a case
    of theirs; li still can, and the engine's own copies are not held back."""
    li, zhou = dsvc.actor("docs", "li"), dsvc.actor("docs", "zhou")
    up = attachments.upload(dsvc, li, "retention", "photo", "客户照片.png", io.BytesIO(PNG))
    with pytest.raises(InvalidInput) as exc:
        dsvc.open_case("docs", "retention", zhou, {"customer_name": "王五", "photo": up.id})
    assert exc.value.details["errors"] == {
        "photo": f"upload {up.id} was made by someone else; upload the file yourself"
    }
    with pytest.raises(InvalidInput) as exc:  # nor inside a list's item
        dsvc.open_case(
            "docs", "retention", zhou, {"customer_name": "王五", "visits": [{"photo": up.id}]}
        )
    assert "was made by someone else" in exc.value.details["errors"]["visits"]
    cid = dsvc.open_case("docs", "retention", li, {"customer_name": "张三", "photo": up.id}).case.id
    assert dsvc.get_case("docs", cid).fields["photo"]["name"] == "客户照片.png"
