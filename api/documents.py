"""Routes for documents: uploading and downloading attachments.

An upload is ``multipart/form-data`` with one part ``file``, posted to the attachment
field it is for; its answer's ``id`` is then given as that field's value in an opening
or action form. Downloads go only to people who may read the case, always as a download
(``Content-Disposition: attachment``, ``X-Content-Type-Options: nosniff``), so a
browser never renders an uploaded file as a page of this site.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, BinaryIO

import anyio.to_thread
from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import Provide
from litestar.params import PathParameter, QueryParameter
from litestar.response import Stream

from api.problems import errors
from api.routes import CaseId, Me, Svc, provide_actor
from core.cases import attachments, charts, exports, records
from core.cases.queries import require_read
from core.cases.reports import run_report
from core.errors import InvalidInput, NotFound

#: the largest request an upload route reads at all (a field's own max_size is smaller)
MAX_UPLOAD = int(os.environ.get("KEFU_MAX_UPLOAD") or 50 * 1024 * 1024)

UploadId = Annotated[int, PathParameter(ge=1, le=2**62, description="the upload's id")]
Key = Annotated[str, PathParameter(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
#: an attachment field (``photos``), or one of a list field's items (``defects.photos``)
FieldPath = Annotated[
    str,
    PathParameter(
        pattern=r"^[a-z][a-z0-9_]{0,63}(\.[a-z][a-z0-9_]{0,63})?$",
        description="the attachment field, or list.field for a field of a list's items",
    ),
]
#: a plugin's report, or a pack's: ``<procedure>.<report>``
ReportName = Annotated[
    str, PathParameter(pattern=r"^[a-z][a-z0-9_-]{0,63}(\.[a-z][a-z0-9_]{0,63})?$")
]
_ACTOR = {"actor": Provide(provide_actor, sync_to_thread=True)}
UPLOAD_WHY = {
    404: "no such procedure, or the field is not an attachment field of it",
    413: "the file is larger than the field takes (nothing is stored)",
    415: "the file's content is not a type the field accepts (nothing is stored)",
    422: "no part named 'file' in the multipart body",
}


@dataclass
class UploadOut:
    """An upload: give its ``id`` as the attachment field's value in a form."""

    id: int
    sha256: str
    name: str
    size: int
    type: str


@post(
    "/api/v1/attachments/{procedure:str}/{field:str}",
    operation_id="uploadAttachment",
    tags=["attachments"],
    responses=errors(403, 404, 413, 415, 422, why=UPLOAD_WHY),
    request_max_body_size=MAX_UPLOAD,
    dependencies=_ACTOR,
)
async def upload_attachment(
    request: Request[Any, Any, Any], svc: Svc, actor: Me, procedure: Key, field: FieldPath
) -> UploadOut:
    """Upload one file for an attachment field (multipart/form-data, part ``file``);
    ``defects.photos`` for the attachment field ``photos`` of the list ``defects``' items.

    The content's type is sniffed (the name and declared type count for nothing) and
    checked against the field's ``accept:``; its size against ``max_size:``. 201 with the
    upload; give its ``id`` as the field's value when opening or acting.
    """
    length = request.headers.get("content-length")
    attachments.check_declared(
        svc, actor, procedure, field, int(length) if length and length.isdigit() else None
    )
    form = await request.form()
    try:
        part = form.get("file")
        if not isinstance(part, UploadFile):
            raise InvalidInput(
                "send the file as the multipart part named 'file'",
                errors={"file": "required"},
            )
        content: Any = part.file  # a spooled temporary file: a binary file object
        up = await anyio.to_thread.run_sync(
            attachments.upload, svc, actor, procedure, field, part.filename, content
        )
    finally:
        for value in form.values():
            if isinstance(value, UploadFile):
                await value.close()
    return UploadOut(up.id, up.sha256, up.name, up.size, up.type)


def _chunks(content: BinaryIO) -> Iterator[bytes]:
    with content:
        while chunk := content.read(attachments.CHUNK):
            yield chunk


def download_headers(name: str, size: int | None = None) -> dict[str, str]:
    """Headers of a file sent as a download: never shown inline, never type-sniffed."""
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    headers = {
        "Content-Disposition": f'attachment; filename="{ascii_name}"; '
        f"filename*=UTF-8''{urllib.parse.quote(name, safe='')}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, no-store",
    }
    if size is not None:
        headers["Content-Length"] = str(size)
    return headers


@get(
    "/api/v1/attachments/{upload_id:int}",
    operation_id="downloadAttachment",
    tags=["attachments"],
    responses=errors(403, 404, 422),
    sync_to_thread=True,
    dependencies=_ACTOR,
    # always a download: never a type a browser would render (the upload's own type is in
    # the upload's answer and the case's field)
    media_type="application/octet-stream",
)
def download_attachment(svc: Svc, actor: Me, upload_id: UploadId) -> Stream:
    """Download an attached file (``application/octet-stream``, as a download).

    Only for people who may read its case; an upload no case holds yet only for the
    person who uploaded it. Another company's upload is 404.
    """
    row = attachments.find(svc, actor, upload_id)
    if row["case_id"] is not None:
        require_read(svc, actor, svc.get_case(actor.company, row["case_id"]))
    content = attachments.content(svc, actor.company, row)
    return Stream(_chunks(content), headers=download_headers(row["filename"], row["size"]))


@dataclass
class RecordInfo:
    """A record a case can print."""

    name: str
    title: str
    form_number: str | None
    revision: str | None


@get(
    "/api/v1/cases/{case_id:int}/records",
    operation_id="listCaseRecords",
    tags=["records"],
    responses=errors(403, 404, 422),
    sync_to_thread=True,
    dependencies=_ACTOR,
)
def list_records(svc: Svc, actor: Me, case_id: CaseId) -> list[RecordInfo]:
    """The records (printed forms) of the case's procedure."""
    view = svc.get_case(actor.company, case_id)
    require_read(svc, actor, view)
    proc = svc.pinned(view)
    cdef = svc.company(actor.company).definition
    out = []
    for name, rec in proc.pack.records.items():
        key = f"{proc.key}.{name}"
        out.append(
            RecordInfo(
                name,
                rec.title.text(cdef.locale),
                cdef.records.form_numbers.get(key, rec.form_number),
                cdef.records.revisions.get(key, rec.revision),
            )
        )
    return out


def _record(svc: Svc, actor: Me, case_id: int, name: str) -> tuple[records.RecordDoc, str]:
    view = svc.get_case(actor.company, case_id)
    require_read(svc, actor, view)
    return records.render_html(svc, actor.company, case_id, name)


@get(
    "/api/v1/cases/{case_id:int}/records/{name:str}",
    operation_id="renderCaseRecord",
    tags=["records"],
    responses=errors(403, 404, 422),
    sync_to_thread=True,
    dependencies=_ACTOR,
    media_type="text/html; charset=utf-8",
)
def render_record(svc: Svc, actor: Me, case_id: CaseId, name: Key) -> Response[str]:
    """One record of the case as a printable HTML page.

    It shows the record's fields (list fields as tables), signatures (void ones marked),
    attachments with their SHA-256, the journal, and a verification code
    (``GET /api/v1/records/verify/{code}``). The page runs no script and loads nothing.
    """
    _, html = _record(svc, actor, case_id, name)
    return Response(
        html,
        headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
            "X-Content-Type-Options": "nosniff",
        },
    )


@get(
    "/api/v1/cases/{case_id:int}/records/{name:str}/pdf",
    operation_id="renderCaseRecordPdf",
    tags=["records"],
    responses=errors(403, 404, 422),
    sync_to_thread=True,
    dependencies=_ACTOR,
    media_type="application/pdf",
)
def render_record_pdf(svc: Svc, actor: Me, case_id: CaseId, name: Key) -> Response[bytes]:
    """One record of the case as an A4 PDF, its fonts (Chinese included) embedded."""
    doc, html = _record(svc, actor, case_id, name)
    return Response(
        records.render_pdf(html),
        headers=download_headers(f"{doc.case['number']}-{name}.pdf"),
    )


@dataclass
class VerificationOut:
    """What a record's verification code says."""

    valid: bool
    detail: str
    case_number: str | None
    record: str | None
    printed_seq: int | None
    last_seq: int | None


@get(
    "/api/v1/records/verify/{code:str}",
    operation_id="verifyRecord",
    tags=["records"],
    responses=errors(422),
    sync_to_thread=True,
    dependencies=_ACTOR,
)
def verify_record(
    svc: Svc, actor: Me, code: Annotated[str, PathParameter(max_length=64)]
) -> VerificationOut:
    """Check a printed record's verification code against my company's journal.

    ``valid`` false with the reason for a code this journal did not issue; true with the
    case, the record and whether the case changed after it was printed.
    """
    v = records.verify(svc, actor.company, code)
    return VerificationOut(v.valid, v.detail, v.case_number, v.record, v.printed_seq, v.last_seq)


LANG = Annotated[
    str | None,
    QueryParameter(pattern="^(zh-CN|en)$", description="column labels (default: the company's)"),
]


def _export(table: exports.Table, fmt: str, filename: str) -> Stream:
    return Stream(exports.chunks(table, fmt), headers=download_headers(f"{filename}.{fmt}"))


def _export_routes(fmt: str) -> list[Any]:
    """The export routes of one format (each route has one content type)."""
    kind = fmt.upper()

    @get(
        f"/api/v1/exports/cases.{fmt}",
        operation_id=f"exportCases{kind.title()}",
        tags=["exports"],
        responses=errors(404, 422),
        sync_to_thread=True,
        dependencies=_ACTOR,
        media_type=exports.MEDIA_TYPES[fmt],
        name=f"export-cases-{fmt}",
    )
    def export_cases(
        svc: Svc,
        actor: Me,
        procedure: Annotated[str | None, QueryParameter(max_length=64)] = None,
        status: Annotated[str | None, QueryParameter(pattern="^(open|closed)$")] = None,
        lang: LANG = None,
    ) -> Stream:
        """The cases I may read, newest first, streamed.

        With ``procedure``, one column per field of it. Labels in the company's language
        (or ``lang``), times in its zone.
        """
        table = exports.cases(svc, actor, procedure, status, lang)
        return _export(table, fmt, f"cases-{procedure or 'all'}")

    @get(
        f"/api/v1/cases/{{case_id:int}}/journal.{fmt}",
        operation_id=f"exportCaseJournal{kind.title()}",
        tags=["exports"],
        responses=errors(403, 404, 422),
        sync_to_thread=True,
        dependencies=_ACTOR,
        media_type=exports.MEDIA_TYPES[fmt],
        name=f"export-journal-{fmt}",
    )
    def export_journal(svc: Svc, actor: Me, case_id: CaseId, lang: LANG = None) -> Stream:
        """The case's journal, oldest first."""
        view = svc.get_case(actor.company, case_id)
        require_read(svc, actor, view)
        table = exports.journal(svc, actor, case_id, lang)
        return _export(table, fmt, f"{view.number}-journal")

    @get(
        f"/api/v1/reports/{{name:str}}/export.{fmt}",
        operation_id=f"exportReport{kind.title()}",
        tags=["exports"],
        responses=errors(404, 422),
        sync_to_thread=True,
        dependencies=_ACTOR,
        media_type=exports.MEDIA_TYPES[fmt],
        name=f"export-report-{fmt}",
    )
    def export_report(
        request: Request[Any, Any, Any], svc: Svc, actor: Me, name: ReportName
    ) -> Stream:
        """Run a report and download its table (query parameters: the report's)."""
        params = {k: str(v) for k, v in request.query_params.items()}
        return _export(exports.report(svc, actor.company, name, params), fmt, name)

    return [export_cases, export_journal, export_report]


@get(
    "/api/v1/reports/{name:str}/chart",
    operation_id="reportChart",
    tags=["reports"],
    responses=errors(404, 422),
    sync_to_thread=True,
    dependencies=_ACTOR,
    media_type="image/svg+xml",
)
def report_chart(
    request: Request[Any, Any, Any], svc: Svc, actor: Me, name: ReportName
) -> Response[str]:
    """The report's chart as SVG (404 when the report draws none); query parameters: the
    report's."""
    params = {k: str(v) for k, v in request.query_params.items()}
    result = run_report(svc, actor.company, name, params)
    if result.chart is None:
        raise NotFound(f"report '{name}' draws no chart")
    return Response(
        charts.svg(result.chart),
        headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
            "X-Content-Type-Options": "nosniff",
        },
    )


ROUTES: list[Any] = [
    report_chart,
    *_export_routes("csv"),
    *_export_routes("xlsx"),
    upload_attachment,
    download_attachment,
    list_records,
    render_record,
    render_record_pdf,
    verify_record,
]
