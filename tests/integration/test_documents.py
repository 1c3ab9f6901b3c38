"""Signatures and attachments through the case service, on SQLite and PostgreSQL.

The QP pack's quality manager signs the 《客户投诉闭环跟踪单》 (QP/XX-A-2021 §5.1.3.1);
the countersign test pack asks quality, production and R&D to countersign a meeting's
conclusions (深圳 5.2.4); the repair desk takes photos of the fault.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.cases import attachments
from core.cases.service import CaseService
from core.errors import InvalidInput, NotAllowed, TooLarge, UnsupportedType
from tests.helpers import FIXTURES, service

ROOT = Path(__file__).resolve().parents[2]
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def documents_rules(tmp: Path) -> Path:
    """A rules folder with the packs the documents tests use."""
    rules = tmp / "rules"
    rules.mkdir(exist_ok=True)
    for pack in (ROOT / "rules" / "qp-complaint", ROOT / "rules" / "repair-desk",
                 ROOT / "tests" / "packs" / "countersign"):
        link = rules / pack.name
        if not link.exists():
            link.symlink_to(pack)
    return rules


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
        {"customer_name": "华东汽配", "content": "quality", "urgency": "high",
         "description": "批次产品尺寸超差"},
    ).case.id
    svc.act("docs", cid, "organise", li, {"responsible_dept": "生产部"}, 1)
    svc.act(
        "docs",
        cid,
        "submit_form",
        wang,
        {"cause": "模具磨损", "corrective_action": "更换模具并全检", "completion_date": "2026-12-20"},
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
    assert signed["data"]["covers"] == ["cause", "corrective_action", "completion_date",
                                        "review_comment"]


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
        "production", "quality_head", "rd"
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

    from api.app import create_app
    from api.auth import AuthSettings
    from core.runtime.users import ensure_user
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
        "/api/v1/cases", json={"procedure": "countersign",
                               "fields": {"subject": "测试", "photos": [up["id"]]}}
    )
    assert r.status_code == 201, r.text
    assert r.json()["case"]["fields"]["photos"][0]["sha256"] == up["sha256"]
    got = zhao.get(f"/api/v1/attachments/{up['id']}")
    assert got.status_code == 200 and got.content == PNG
    assert got.headers["content-type"] == "image/png"
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
    problem(zhao.post("/api/v1/attachments/countersign/subject", files={"file": ("a", b"x")}),
            404, "not-found")
    problem(zhao.post("/api/v1/attachments/countersign/photos", data={"x": "1"}), 422,
            "invalid-input")
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
    from core import hookimpl
    from core.runtime.plugins import PluginError, build_registry, plugin_manager

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
