"""Exports: case lists, a case's journal and any report as CSV or XLSX, streamed.

Rows are read in pages along an index (a case list walks ``ix_case_created`` newest
first, a page of :data:`PAGE` at a time) and written as they come: CSV goes out line by
line; XLSX is written by XlsxWriter in constant-memory mode (each row flushed to a
temporary file) and the finished file is streamed, so memory stays flat however many
cases a company has. Column titles are the labels in the company's language (or the one
asked for), choices by their labels, times in the company's zone.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import tempfile
import zoneinfo
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup
from sqlalchemy import or_, select

from core.cases.charts import svg
from core.cases.queries import readable_procedures
from core.cases.records import display
from core.cases.reports import find_report, run_report
from core.cases.service import Actor, CaseService
from core.errors import NotFound
from core.storage import schema as t

PAGE = 1000
CHUNK = 64 * 1024
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
HEADINGS = {
    "zh-CN": {
        "number": "编号",
        "procedure": "程序",
        "status": "状态",
        "step": "步骤",
        "created_at": "创建时间",
        "created_by": "创建人",
        "updated_at": "更新时间",
        "closed_at": "关闭时间",
        "seq": "序号",
        "at": "时间",
        "actor": "操作人",
        "kind": "类型",
        "action": "动作",
        "rule": "规则",
        "data": "内容",
        "open": "处理中",
        "closed": "已关闭",
    },
    "en": {
        "number": "Number",
        "procedure": "Procedure",
        "status": "Status",
        "step": "Step",
        "created_at": "Created",
        "created_by": "Created by",
        "updated_at": "Updated",
        "closed_at": "Closed",
        "seq": "Seq",
        "at": "When",
        "actor": "Who",
        "kind": "Kind",
        "action": "Action",
        "rule": "Rule",
        "data": "Data",
        "open": "open",
        "closed": "closed",
    },
}


@dataclass
class Table:
    """An export before it is written: a sheet name, column titles and rows (lazy)."""

    sheet: str
    columns: list[str]
    rows: Iterable[Sequence[Any]]


def _lang(svc: CaseService, company: str, lang: str | None) -> str:
    locale = lang or svc.company(company).definition.locale
    return "en" if locale.startswith("en") else "zh-CN"


def _local(moment: dt.datetime | None, tz: zoneinfo.ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M") if moment else ""


def cases(
    svc: CaseService,
    actor: Actor,
    procedure: str | None = None,
    status: str | None = None,
    lang: str | None = None,
) -> Table:
    """The cases ``actor`` may read, newest first; with ``procedure``, its fields too."""
    rt = svc.company(actor.company)
    readable = readable_procedures(svc, rt, actor)
    if procedure is not None:
        if procedure not in rt.procedures:
            raise NotFound(f"procedure '{procedure}' is not enabled for this company")
        readable = [procedure] if procedure in readable else []
    locale = _lang(svc, actor.company, lang)
    words = HEADINGS[locale]
    tz = zoneinfo.ZoneInfo(rt.definition.timezone)
    people = {k: p.name for k, p in rt.definition.people.items()}
    proc = rt.procedures[procedure] if procedure else None
    field_defs = list(proc.pack.fields.items()) if proc else []
    columns = [
        words[k]
        for k in (
            "number",
            "procedure",
            "status",
            "step",
            "created_at",
            "created_by",
            "updated_at",
            "closed_at",
        )
    ]
    columns += [f.label.text(locale) for _, f in field_defs]

    def rows() -> Iterator[list[Any]]:
        c = t.case
        last: tuple[dt.datetime, int] | None = None
        while readable:
            q = select(c).where(c.c.company_id == rt.id, c.c.procedure.in_(readable))
            if status:
                q = q.where(c.c.status == status)
            if last is not None:
                # the first condition alone bounds the index range (an OR alone would
                # make each page scan from the newest case again)
                q = q.where(
                    c.c.created_at <= last[0],
                    or_(c.c.created_at < last[0], c.c.id < last[1]),
                )
            q = q.order_by(c.c.created_at.desc(), c.c.id.desc()).limit(PAGE)
            with svc.db.read() as conn:
                page = conn.execute(q).all()
            for r in page:
                pinned = rt.procedures.get(r.procedure)
                step = pinned.pack.steps.get(r.step) if pinned else None
                title = pinned.pack.title.text(locale) if pinned else r.procedure
                out: list[Any] = [
                    r.number,
                    title,
                    words.get(r.status, r.status),
                    step.label.text(locale) if step else r.step,
                    _local(r.created_at, tz),
                    people.get(r.created_by, r.created_by),
                    _local(r.updated_at, tz),
                    _local(r.closed_at, tz),
                ]
                for name, fdef in field_defs:
                    value = display(fdef, r.fields.get(name), locale, tz, people)
                    if isinstance(value, dict):  # a list field: its items, one per line
                        value = "\n".join(" / ".join(map(str, row)) for row in value["rows"])
                    out.append(value)
                yield out
            if len(page) < PAGE:
                return
            last = (page[-1].created_at, page[-1].id)

    return Table("cases", columns, rows())


def journal(svc: CaseService, actor: Actor, case_id: int, lang: str | None = None) -> Table:
    """A case's journal, oldest first (who, when, what; the data as JSON)."""
    locale = _lang(svc, actor.company, lang)
    words = HEADINGS[locale]
    tz = zoneinfo.ZoneInfo(svc.company(actor.company).definition.timezone)
    entries = svc.journal(actor.company, case_id)
    columns = [words[k] for k in ("seq", "at", "actor", "kind", "action", "rule", "data")]
    rows = (
        [
            e["seq"],
            _local(e["at"], tz),
            e["actor"],
            e["kind"],
            e["action"] or "",
            e["rule_id"] or "",
            json.dumps(e["data"] or {}, ensure_ascii=False, sort_keys=True),
        ]
        for e in entries
    )
    return Table("journal", columns, rows)


def report(svc: CaseService, company: str, name: str, params: dict[str, str]) -> Table:
    """A report's table."""
    result = run_report(svc, company, name, params)
    return Table(name[:31], list(result.columns), result.rows)


# -- writers ---------------------------------------------------------------------------------


def csv_chunks(table: Table) -> Iterator[bytes]:
    """The table as UTF-8 CSV (with a BOM, so spreadsheet programs read the Chinese)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    buf.write("\ufeff")
    writer.writerow(table.columns)
    for n, row in enumerate(table.rows, start=1):
        writer.writerow([_inert(v) for v in row])
        if n % 200 == 0:
            yield buf.getvalue().encode()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode()


def xlsx_chunks(table: Table) -> Iterator[bytes]:
    """The table as an XLSX workbook, written in constant memory, then streamed."""
    import xlsxwriter  # imported when an XLSX export runs, not at every start

    fd, path = tempfile.mkstemp(suffix=".xlsx")
    os.close(fd)
    try:
        book = xlsxwriter.Workbook(
            path,
            {
                "constant_memory": True,
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "tmpdir": tempfile.gettempdir(),
            },
        )
        sheet = book.add_worksheet(table.sheet)
        bold = book.add_format({"bold": True})
        sheet.write_row(0, 0, table.columns, bold)
        sheet.freeze_panes(1, 0)
        for n, row in enumerate(table.rows, start=1):
            sheet.write_row(n, 0, [_cell(v) for v in row])
        book.close()
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk
    finally:
        os.unlink(path)


def _inert(value: Any) -> Any:
    # a text a customer typed must not become a formula in the spreadsheet that opens
    # the CSV ("=HYPERLINK(…)"): such a text gets a leading apostrophe
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def chunks(table: Table, fmt: str) -> Iterator[bytes]:
    """The table in ``fmt`` (csv or xlsx), piece by piece."""
    return xlsx_chunks(table) if fmt == "xlsx" else csv_chunks(table)


_REPORT_ENV = SandboxedEnvironment(autoescape=True)
REPORT_PAGE = """<!doctype html>
<html lang="{{ locale }}"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
@page { size: A4 landscape; margin: 16mm;
  @bottom-right { content: counter(page) " / " counter(pages); font-size: 8pt; } }
html { font-family: "Noto Sans CJK SC", "Noto Sans SC", sans-serif; font-size: 9.5pt; }
h1 { font-size: 15pt; } table { border-collapse: collapse; width: 100%; margin-top: 4mm; }
th, td { border: 0.6pt solid #444; padding: 1.2mm 2mm; text-align: left; }
th { background: #eee; } .chart svg { width: 100%; height: auto; } .note { color: #444; }
</style></head><body>
<div class="note">{{ company }} · {{ printed }}</div>
<h1>{{ title }}</h1>
{% if chart %}<div class="chart">{{ chart }}</div>{% endif %}
<table><tr>{% for c in columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for row in rows %}<tr>{% for v in row %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}
</table>
{% for n in notes %}<p class="note">{{ n }}</p>{% endfor %}
</body></html>
"""


def report_html(svc: CaseService, company: str, name: str, params: dict[str, str]) -> str:
    """A report as a printable page: its chart (SVG inline), its table and its notes."""

    rt = svc.company(company)
    result = run_report(svc, company, name, params)
    report_def = find_report(svc, company, name)
    tz = zoneinfo.ZoneInfo(rt.definition.timezone)
    return _REPORT_ENV.from_string(REPORT_PAGE).render(
        locale=rt.definition.locale,
        title=report_def.title,
        company=rt.definition.name.text(rt.definition.locale),
        printed=_local(svc.clock.now(), tz),
        chart=Markup(svg(result.chart)) if result.chart is not None else None,
        columns=result.columns,
        rows=result.rows,
        notes=result.notes,
    )
