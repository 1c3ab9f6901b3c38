"""Records: the pack's ``records:`` rendered from a case as HTML and PDF, and verified.

A record shows the case's fields as the record lists them (a list field as a table, a
choice by its label, a time in the company's zone), its signatures (valid or void, with
the hash they hold), the files attached with their SHA-256, and the journal that
produced it. It carries the form number and revision (the company's ``records:
form_numbers:`` before the pack's), the company's header, page numbers and a
verification code: ``KF-<case id>-<journal seq>-<16 hex>``, the last journal entry of
the case when it was printed and a digest of that entry's hash, so :func:`verify`
(``kefu records verify``, ``GET /api/v1/records/verify/{code}``) can tell an auditor that
the page came from this journal, and whether the case changed since.

Templates are Jinja (HTML, autoescaped) in a sandbox, bounded in time and output: a
company's ``records: {templates: folder}`` (``<procedure>/<record>.html``) before the
pack's ``records/<record>.html`` before the built-in ``record.html`` beside this module.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import time
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import segno
from jinja2 import TemplateError
from markupsafe import Markup
from sqlalchemy import func, select

from core.cases import attachments, signatures
from core.cases import journal as chain
from core.cases.service import CaseService
from core.errors import InvalidInput, NotFound
from core.spec.definitions import FieldDef, RecordDef
from core.spec.procedures import CompiledProcedure
from core.spec.templates import TemplateLimit, bounded_environment, render_bounded
from core.storage import schema as t

DEFAULT_TEMPLATE = Path(__file__).with_name("record.html")
#: bounds of one rendering: wall time, output size, template size
RENDER_SECONDS = 3.0
MAX_OUTPUT = 5 * 1024 * 1024
MAX_TEMPLATE = 256 * 1024
#: journal entries a record prints at most (the newest are kept)
JOURNAL_LINES = 200
CODE_RE = re.compile(r"^KF-(\d{1,18})-(\d{1,18})-([0-9a-f]{16})$")

WORDS = {
    "zh-CN": {
        "case": "编号",
        "procedure": "程序",
        "status": "状态",
        "step": "当前步骤",
        "open": "处理中",
        "closed": "已关闭",
        "form_number": "表单编号",
        "revision": "版本",
        "signatures": "签字",
        "signature": "签字项",
        "role": "角色",
        "signer": "签字人",
        "signed_at": "签字时间",
        "hash": "签字时字段哈希",
        "valid": "有效",
        "void": "作废",
        "unsigned": "待签",
        "attachments": "附件",
        "file": "文件",
        "size": "大小",
        "type": "类型",
        "sha256": "SHA-256",
        "journal": "处理记录",
        "at": "时间",
        "actor": "操作人",
        "what": "内容",
        "verify": "验证码",
        "printed": "打印时间",
        "page": "第 {page} 页 / 共 {pages} 页",
        "yes": "是",
        "no": "否",
        "field": "项目",
        "value": "内容",
        "more": "(另有 {n} 条较早记录未列出)",
        "opened": "立案",
        "closed_entry": "关闭",
        "changed": "签字后修改",
        "signature_void": "签字作废",
        "linked": "关联案件",
        "link": "关系",
    },
    "en": {
        "case": "Number",
        "procedure": "Procedure",
        "status": "Status",
        "step": "Step",
        "open": "open",
        "closed": "closed",
        "form_number": "Form",
        "revision": "Rev.",
        "signatures": "Signatures",
        "signature": "Signature",
        "role": "Role",
        "signer": "Signed by",
        "signed_at": "Signed at",
        "hash": "Hash of the fields signed",
        "valid": "valid",
        "void": "VOID",
        "unsigned": "not signed",
        "attachments": "Attachments",
        "file": "File",
        "size": "Size",
        "type": "Type",
        "sha256": "SHA-256",
        "journal": "History",
        "at": "When",
        "actor": "Who",
        "what": "What",
        "verify": "Verification code",
        "printed": "Printed",
        "page": "Page {page} of {pages}",
        "yes": "yes",
        "no": "no",
        "field": "Item",
        "value": "Value",
        "more": "({n} earlier entries not shown)",
        "opened": "opened",
        "closed_entry": "closed",
        "changed": "changed after signing",
        "signature_void": "signature void",
        "linked": "Linked cases",
        "link": "Link",
    },
}


def _words(locale: str) -> dict[str, str]:
    return WORDS["en" if locale.startswith("en") else "zh-CN"]


# -- assembling a record from a case -------------------------------------------------------


def _local(value: str | dt.datetime, tz: zoneinfo.ZoneInfo) -> str:
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M") if moment.tzinfo else str(value)


def display(
    fdef: FieldDef, value: Any, locale: str, tz: zoneinfo.ZoneInfo, people: Mapping[str, str]
) -> Any:
    """A stored value as a record prints it: text, or ``{columns, rows}`` for a list."""
    if value is None or value == [] or value == "":
        return ""
    words = _words(locale)
    if fdef.type == "list":
        subs = fdef.of or {}
        return {
            "columns": [s.label.text(locale) for s in subs.values()],
            "rows": [
                [display(s, item.get(n), locale, tz, people) for n, s in subs.items()]
                for item in value
                if isinstance(item, dict)
            ],
        }
    if fdef.type == "choice":
        labels = {k: v.text(locale) for k, v in (fdef.choices or {}).items()}
        return "、".join(
            labels.get(v, str(v)) for v in (value if isinstance(value, list) else [value])
        )
    if fdef.type == "boolean":
        return words["yes"] if value else words["no"]
    if fdef.type == "datetime":
        return _local(value, tz)
    if fdef.type == "person":
        return f"{people[value]} ({value})" if value in people else str(value)
    if fdef.type == "attachment":
        files = value if isinstance(value, list) else [value]
        return "; ".join(str(f.get("name")) for f in files if isinstance(f, dict))
    if fdef.type == "money" and isinstance(value, int | float):
        return f"{value:,.2f}"
    return str(value)


def _path_label(proc: CompiledProcedure, path: str, locale: str) -> str:
    """``photos`` → its label; ``defects.photos`` → "问题清单 · 照片"."""
    top, _, sub = path.partition(".")
    fdef = proc.pack.fields[top]
    if not sub:
        return fdef.label.text(locale)
    return f"{fdef.label.text(locale)} · {(fdef.of or {})[sub].label.text(locale)}"


def _entry_text(proc: CompiledProcedure, e: Mapping[str, Any], locale: str) -> str:
    words = _words(locale)
    data = e.get("data") or {}
    kind = e["kind"]
    if kind == "action":
        step = proc.pack.steps.get(data.get("from_step") or "")
        act = step.actions.get(e.get("action") or "") if step else None
        label = act.label.text(locale) if act else e.get("action")
        return f"{label}"
    if kind in ("signed", "signature_void"):
        sdef = proc.pack.signatures.get(data.get("signature", ""))
        label = sdef.label.text(locale) if sdef else data.get("signature")
        if kind == "signed":
            return f"✍ {label} ({str(data.get('hash', ''))[:12]}…)"
        changed = [_field_label(proc, f, locale) for f in data.get("changed", [])]
        return f"✗ {words['signature_void']} {label}: {words['changed']} {'、'.join(changed)}"
    if kind == "opened":
        return f"{words['opened']} {data.get('number', '')}"
    if kind == "closed":
        return words["closed_entry"]
    if e.get("rule_id"):
        return f"{kind} ({e['rule_id']})"
    return str(kind)


def _field_label(proc: CompiledProcedure, name: str, locale: str) -> str:
    """A field's label; ``list.field`` (what a signature may cover): the list's and the
    item field's labels."""
    base, _, sub = name.partition(".")
    fdef = proc.pack.fields.get(base)
    if fdef is None:
        return name
    sdef = (fdef.of or {}).get(sub) if sub else None
    if sub and sdef is None:
        return name
    return fdef.label.text(locale) + (f" · {sdef.label.text(locale)}" if sdef else "")


@dataclass
class RecordDoc:
    """Everything one record prints, ready for its template (``doc`` there)."""

    name: str
    title: str
    form_number: str | None
    revision: str | None
    company: str
    header: str
    locale: str
    case: dict[str, Any]
    fields: list[dict[str, Any]]
    signatures: list[dict[str, Any]]
    attachments: list[dict[str, Any]]
    journal: list[dict[str, Any]]
    journal_omitted: int
    code: str
    printed_at: str
    words: dict[str, str]
    qr: Markup = Markup("")  # the verification code as a QR code (inline SVG)
    linked: list[dict[str, Any]] = field(default_factory=list)  # cases rules opened from it


def qr_svg(text: str) -> Markup:
    """``text`` as a QR code, an inline SVG (segno: pure Python, nothing fetched)."""
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="svg", scale=2, border=2, xmldecl=False)
    return Markup(out.getvalue().decode())


def code_for(entry_hash: str, record: str, case_id: int, seq: int) -> str:
    """The verification code of record ``record`` of a case printed at journal ``seq``."""
    digest = hashlib.sha256(f"{entry_hash}|{record}|{case_id}".encode()).hexdigest()[:16]
    return f"KF-{case_id}-{seq}-{digest}"


def _record_def(proc: CompiledProcedure, name: str) -> RecordDef:
    rec = proc.pack.records.get(name)
    if rec is None:
        raise NotFound(
            f"procedure {proc.key} has no record '{name}' "
            f"(records: {', '.join(proc.pack.records) or 'none'})"
        )
    return rec


def _linked(conn: Any, company_id: int, case_id: int) -> list[Any]:
    """The cases rules opened from this one (``open_case``), oldest first."""
    lk, c = t.case_link, t.case
    return list(
        conn.execute(
            select(lk.c.link, c.c.number, c.c.procedure, c.c.status, c.c.step)
            .join(c, c.c.id == lk.c.to_case_id)
            .where(lk.c.company_id == company_id, lk.c.from_case_id == case_id)
            .order_by(lk.c.id)
        ).all()
    )


def _void_reason(proc: CompiledProcedure, s: signatures.Signed, locale: str) -> str:
    # the changed fields (their keys in the stored reason) printed with their labels
    if not s.changed:
        return s.void_reason or ""
    labels = "、".join(_field_label(proc, n, locale) for n in s.changed)
    return f"{_words(locale)['changed']}: {labels}"


def assemble(svc: CaseService, company: str, case_id: int, name: str) -> RecordDoc:
    """The record ``name`` of a case as it stands (NotFound for an unknown record)."""
    rt = svc.company(company)
    view = svc.get_case(company, case_id)
    proc = svc.pinned(view)
    rec = _record_def(proc, name)
    cdef = rt.definition
    locale, tz = cdef.locale, zoneinfo.ZoneInfo(cdef.timezone)
    words = _words(locale)
    people = {k: p.name for k, p in cdef.people.items()}
    journal = svc.journal(company, case_id)
    with svc.db.read() as conn:
        sigs = signatures.of_case(conn, rt.id, case_id)
        uploads = attachments.case_uploads(conn, rt.id, case_id)
        links = _linked(conn, rt.id, case_id)
    fields = []
    for fname in rec.fields:
        fdef = proc.pack.fields[fname]
        fields.append(
            {
                "name": fname,
                "label": fdef.label.text(locale),
                "type": fdef.type,
                "value": display(fdef, view.fields.get(fname), locale, tz, people),
            }
        )
    shown = rec.signatures
    if shown is None:
        shown = [
            n
            for n, s in proc.pack.signatures.items()
            if {c.partition(".")[0] for c in s.covers} & set(rec.fields)
        ]
    sig_rows = []
    states = signatures.progress(proc.pack.signatures, sigs)
    for sname in shown:
        state = states[sname]
        label = state.definition.label.text(locale)
        for s in state.signed:
            role = proc.pack.roles.get(s.role)
            sig_rows.append(
                {
                    "label": label,
                    "role": role.label.text(locale) if role else s.role,
                    "signer": f"{people.get(s.username, s.username)} ({s.username})",
                    "at": _local(s.signed_at, tz),
                    "hash": s.fields_hash,
                    "void": s.void_at is not None,
                    "void_reason": _void_reason(proc, s, locale),
                    "status": words["void"] if s.void_at is not None else words["valid"],
                }
            )
        # a countersignature lists every role still to sign; one of several roles, the first
        waiting = state.waiting if state.definition.need == "all" else state.waiting[:1]
        for r in waiting:
            role = proc.pack.roles.get(r)
            sig_rows.append(
                {
                    "label": label,
                    "role": role.label.text(locale) if role else r,
                    "signer": "",
                    "at": "",
                    "hash": "",
                    "void": False,
                    "void_reason": "",
                    "status": words["unsigned"],
                }
            )
    # the record's attachment fields, and those of its list fields' items (defects.photos)
    labels = {
        path: _path_label(proc, path, locale)
        for path in attachments.field_paths(proc.pack)
        if path.partition(".")[0] in rec.fields
    }
    files = [
        {
            "field": labels[u["field"]],
            "name": u["filename"],
            "size": u["size"],
            "type": u["media_type"],
            "sha256": u["sha256"],
        }
        for u in uploads
        if u["field"] in labels
    ]
    lines = [
        {
            "at": _local(e["at"], tz),
            "actor": people.get(e["actor"], e["actor"]),
            "what": _entry_text(proc, e, locale),
        }
        for e in journal
    ]
    omitted = max(0, len(lines) - JOURNAL_LINES)
    last = journal[-1]
    form_numbers, revisions = cdef.records.form_numbers, cdef.records.revisions
    key = f"{proc.key}.{name}"
    code = code_for(last["hash"], name, case_id, last["seq"])
    linked = []
    for link in links:
        child = rt.procedures.get(link.procedure)
        step = child.pack.steps.get(link.step) if child else None
        linked.append(
            {
                "link": link.link,
                "number": link.number,
                "procedure": child.pack.title.text(locale) if child else link.procedure,
                "status": words.get(link.status, link.status),
                "step": step.label.text(locale) if step else link.step,
            }
        )
    return RecordDoc(
        name=name,
        title=rec.title.text(locale),
        form_number=form_numbers.get(key, rec.form_number),
        revision=revisions.get(key, rec.revision),
        company=cdef.name.text(locale),
        header=cdef.records.header.text(locale) if cdef.records.header else cdef.name.text(locale),
        locale=locale,
        case={
            "id": view.id,
            "number": view.number,
            "procedure": proc.pack.title.text(locale),
            "version": view.procedure_version,
            "status": words[view.status] if view.status in words else view.status,
            "step": proc.step(view.step).label.text(locale),
            "opened_at": _local(view.created_at, tz),
        },
        fields=fields,
        signatures=sig_rows,
        attachments=files,
        journal=lines[omitted:] if rec.journal else [],
        journal_omitted=omitted if rec.journal else 0,
        code=code,
        printed_at=_local(svc.clock.now(), tz),
        words=words,
        qr=qr_svg(code),
        linked=linked,
    )


# -- templates, bounded ---------------------------------------------------------------------

# the sandbox and the limits of every template kefu renders (core.spec.templates), with
# HTML escaping; a record's own bounds are larger than a message's
ENV = bounded_environment(autoescape=True)


def _css_string(value: Any) -> Markup:
    """``{{ x|css }}``: text inside a CSS string ("…"), as page headers and footers need
    (HTML escaping means nothing inside <style>; this keeps the text from ending it)."""
    out = []
    for c in str(value):
        if c in '"\\<>&' or ord(c) < 0x20:
            out.append(f"\\{ord(c):x} ")
        else:
            out.append(c)
    return Markup("".join(out))


ENV.filters["css"] = _css_string


def render_html_source(source: str, doc: RecordDoc) -> str:
    """Render template ``source`` for ``doc`` within the time and size bounds."""
    if len(source) > MAX_TEMPLATE:
        raise InvalidInput(f"the record template is larger than {MAX_TEMPLATE} characters")
    try:
        template = ENV.from_string(source)
    except TemplateError as exc:
        raise InvalidInput(f"the record template cannot be read: {exc}") from None
    deadline = time.monotonic() + RENDER_SECONDS
    try:
        return render_bounded(
            template, {"doc": doc, "w": doc.words}, deadline, MAX_OUTPUT, RENDER_SECONDS
        )
    except TemplateLimit as exc:
        raise InvalidInput(f"the record template: {exc}") from None
    except TemplateError as exc:  # a sandbox refusal, an undefined name
        raise InvalidInput(f"the record template failed: {exc}") from None


def template_source(svc: CaseService, company: str, procedure: str, name: str) -> str:
    """The record template: the company's, else the pack's, else the built-in one."""
    lc = svc.catalog.companies.get(company)
    if lc is not None and lc.company.records.templates:
        folder = Path(lc.path).parent / lc.company.records.templates
        candidate = folder / procedure / f"{name}.html"
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
    lp = svc.catalog.packs.get(procedure)
    if lp is not None:
        pack_dir = Path(lp.path) if Path(lp.path).is_dir() else Path(lp.path).parent
        candidate = pack_dir / "records" / f"{name}.html"
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
    return DEFAULT_TEMPLATE.read_text(encoding="utf-8")


def render_html(svc: CaseService, company: str, case_id: int, name: str) -> tuple[RecordDoc, str]:
    """The record as an HTML page (with its print styles)."""
    doc = assemble(svc, company, case_id, name)
    view = svc.get_case(company, case_id)
    return doc, render_html_source(template_source(svc, company, view.procedure, name), doc)


def render_pdf(html: str) -> bytes:
    """The HTML of a record as PDF (A4; the fonts it uses embedded)."""
    # weasyprint takes about a second to import and only PDF rendering needs it
    import weasyprint

    # no fetching: a record refers to nothing outside itself (offline intranets)
    def no_fetch(url: str, *args: Any, **kwargs: Any) -> Any:
        raise ValueError(f"records load nothing from outside: {url}")

    out = weasyprint.HTML(string=html, url_fetcher=no_fetch).write_pdf()
    assert out is not None
    return bytes(out)


# -- verification ---------------------------------------------------------------------------


@dataclass
class Verification:
    """What a verification code says: valid or not, for which case and record, and
    whether the case changed after it was printed."""

    valid: bool
    detail: str
    case_number: str | None = None
    record: str | None = None
    printed_seq: int | None = None
    last_seq: int | None = None


def verify(svc: CaseService, company: str, code: str, record: str | None = None) -> Verification:
    """Check a record's verification code against the company's journal.

    ``record``: the record's name when known (a printed record shows its title; the code
    is checked against each record of the case otherwise)."""
    m = CODE_RE.match(code.strip())
    if m is None:
        return Verification(False, "not a kefu verification code (KF-<case>-<seq>-<16 hex>)")
    case_id, seq, digest = int(m[1]), int(m[2]), m[3]
    rt = svc.company(company)
    j = t.journal
    with svc.db.read() as conn:
        entry = conn.execute(select(j).where(j.c.company_id == rt.id, j.c.seq == seq)).first()
        last = conn.execute(
            select(func.max(j.c.seq)).where(j.c.company_id == rt.id, j.c.case_id == case_id)
        ).scalar()
    if entry is None or entry.case_id != case_id:
        return Verification(False, "no such record was printed from this company's journal")
    intact = chain.entry_code_ok(rt.id, entry)
    if intact is None:
        return Verification(False, f"journal entry {seq} is signed with a key this server lacks")
    if not intact:
        return Verification(False, f"journal entry {seq} was changed after it was written")
    view = svc.get_case(company, case_id)
    proc = svc.pinned(view)
    names = [record] if record else list(proc.pack.records)
    match = next((n for n in names if code_for(entry.hash, n, case_id, seq)[-16:] == digest), None)
    if match is None:
        return Verification(False, "the code does not match this case's journal")
    changed = last is not None and last > seq
    detail = f"record '{match}' of case {view.number} as of journal entry {seq}" + (
        f"; the case changed afterwards (last entry {last})" if changed else "; still current"
    )
    return Verification(True, detail, view.number, match, seq, last)
