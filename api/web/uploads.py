"""Files chosen in a page's form, stored through the same attachment service as the API's
upload route (``POST /api/v1/attachments/{procedure}/{field}``).

A form with an attachment field is sent as ``multipart/form-data``; its file input is
``f.<field>.file``. Before the action runs, each chosen file goes through
:func:`core.cases.attachments.upload` — content sniffed, size counted, checked against
the field's ``accept:`` and ``max_size:`` — and its upload id becomes the field's value,
which the case service resolves and claims exactly as for an API client. A file the
field refuses is the field's message (413 / 415 on the page), never a problem document.

When the form comes back (a refusal, a stale version), the files already stored are not
asked for again: they travel as ``f.<field>.new`` with the upload id signed with the
form's CSRF token (HMAC), so only the browser that uploaded a file can name it in a form;
a multiple field's current files are ticked ``f.<field>.keep`` boxes (signed too), and
unticking one removes it. ``f.<field>._had`` lists the ids the form showed, so a form
that changes nothing leaves the field as it is.

An attachment sub-field of a list (a checklist item's photos) works the same way in each
row of the list's table: its inputs are ``f.<list>.<row>.<sub>.file`` (and ``.new``,
``.keep``, ``._had``), its files are uploaded to ``<list>.<sub>``, and a refused file is
the list field's message, naming the row.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from litestar import Request
from litestar.datastructures import UploadFile
from litestar.exceptions import HTTPException

from api.web.i18n import N_
from api.web.widgets import PREFIX, row_indexes
from core.cases import attachments
from core.errors import KefuError
from core.spec.definitions import FieldDef
from core.spec.procedures import CompiledProcedure

FILE, NEW, KEEP, HAD = ".file", ".new", ".keep", "._had"
#: the largest urlencoded form (no files) a page reads, as the API's JSON bodies
MAX_FORM = 1024 * 1024
TOO_LARGE = N_("the files sent were larger than the server takes in one form")


def token(secret: str, upload_id: int) -> str:
    """``<id>.<mac>``: an upload id only the holder of ``secret`` (the form's CSRF token)
    can have written."""
    mac = hmac.new(secret.encode(), f"upload:{upload_id}".encode(), hashlib.sha256)
    return f"{upload_id}.{mac.hexdigest()[:32]}"


def untoken(secret: str, value: str) -> int | None:
    """The upload id of a :func:`token`, or None when it is not one ``secret`` signed."""
    raw, _, _ = value.partition(".")
    if not raw.isdigit() or not 0 < int(raw) < 2**62:
        return None
    return int(raw) if hmac.compare_digest(token(secret, int(raw)), value) else None


@dataclass
class Posted:
    """A posted form: its text inputs (as :data:`Typed`) and its chosen files."""

    typed: dict[str, list[str]]
    files: dict[str, list[UploadFile]] = field(default_factory=dict)
    too_large: bool = False  # the body was over the size limit: nothing of it was read

    async def close(self) -> None:
        for parts in self.files.values():
            for part in parts:
                await part.close()


async def posted(request: Request[Any, Any, Any]) -> Posted:
    """Read a form post, text inputs and files; a body over the route's limit (or an
    urlencoded one over :data:`MAX_FORM`) gives an empty :class:`Posted` that says so."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    length = request.headers.get("content-length", "")
    if kind != "multipart/form-data" and length.isdigit() and int(length) > MAX_FORM:
        return Posted({}, too_large=True)
    try:
        data = await request.form()
    except HTTPException as exc:
        if exc.status_code == 413 or "Too Large" in str(exc.detail):
            return Posted({}, too_large=True)
        raise
    out = Posted({})
    for key, value in data.multi_items():
        if isinstance(value, UploadFile):
            out.files.setdefault(key, []).append(value)
        else:
            out.typed.setdefault(key, []).append(value)
    return out


@dataclass
class Received:
    """What the files of a form became: the inputs with plain upload ids (what the
    attachment widget reads), each upload's name and size by id (to show them again), and
    the fields whose file was refused, with the status of the worst refusal."""

    typed: dict[str, list[str]]
    uploads: dict[int, dict[str, Any]]
    errors: dict[str, str]
    status: int = 422


@dataclass(frozen=True)
class Slot:
    """One place of a form that takes files: an attachment field, or an attachment
    sub-field in one row of a list's table."""

    key: str  # its inputs' name: f.<field>, or f.<list>.<row>.<sub>
    field: FieldDef
    path: str  # the field the upload is for: <field>, or <list>.<sub>
    owner: str  # the form field its messages stand beside
    row: int | None = None


def slots(proc: CompiledProcedure, names: list[str], keys: Iterable[str]) -> list[Slot]:
    """The slots of the fields ``names``; a list's rows are those ``keys`` (the posted
    input names) mention."""
    keys = list(keys)
    out: list[Slot] = []
    for name in names:
        f = proc.pack.fields[name]
        if f.type == "attachment":
            out.append(Slot(PREFIX + name, f, name, name))
        elif f.type == "list":
            subs = {s: d for s, d in (f.of or {}).items() if d.type == "attachment"}
            out += [
                Slot(f"{PREFIX}{name}.{row}.{s}", d, f"{name}.{s}", name, row)
                for row in row_indexes(keys, PREFIX + name)
                for s, d in subs.items()
            ]
    return out


def takes_files(f: FieldDef) -> bool:
    """Whether a field's form input sends files: an attachment field, or a list with an
    attachment sub-field."""
    return f.type == "attachment" or any(d.type == "attachment" for d in (f.of or {}).values())


def receive(
    svc: Any,
    actor: Any,
    proc: CompiledProcedure,
    names: list[str],
    form: Posted,
    secret: str,
) -> Received:
    """Store the files chosen for the attachment fields among ``names`` (as ``actor``)
    and turn the signed ids the form carried back into plain ones."""
    typed = {k: list(v) for k, v in form.typed.items()}
    uploads: dict[int, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    statuses: set[int] = set()
    for slot in slots(proc, names, [*form.typed, *form.files]):
        key = slot.key
        for suffix in (NEW, KEEP):
            ids = [i for i in (untoken(secret, v) for v in typed.pop(key + suffix, [])) if i]
            typed[key + suffix] = [str(i) for i in ids]
            if suffix == NEW:
                for i in ids:
                    try:
                        row = attachments.find(svc, actor, i)
                    except KefuError:
                        continue
                    uploads[i] = _shown(row["id"], row["filename"], row["size"], row["media_type"])
        chosen = [p for p in form.files.get(key + FILE, []) if p.filename]
        if not slot.field.multiple:
            chosen = chosen[-1:]
        for part in chosen:
            try:
                content: Any = part.file  # a spooled temporary file: a binary file object
                up = attachments.upload(svc, actor, proc.key, slot.path, part.filename, content)
            except KefuError as exc:
                where = "" if slot.row is None else f"#{slot.row + 1} "
                message = f"{where}{attachments.safe_name(part.filename)}: {exc.message}"
                errors[slot.owner] = "; ".join(filter(None, (errors.get(slot.owner), message)))
                statuses.add(exc.status)
                continue
            typed[key + NEW].append(str(up.id))
            uploads[up.id] = _shown(up.id, up.name, up.size, up.type)
    # the page answers as the API's upload would: too large before the wrong type
    status = next((s for s in (413, 415) if s in statuses), 422)
    return Received(typed, uploads, errors, status)


def too_large(proc: CompiledProcedure, names: list[str]) -> dict[str, str]:
    """The message beside each attachment field when a form's body was over the limit
    (nothing of it was read, so nothing was stored)."""
    return {n: TOO_LARGE for n in names if takes_files(proc.pack.fields[n])}


def _shown(upload_id: int, name: str, size: int, media_type: str) -> dict[str, Any]:
    return {"id": upload_id, "name": name, "size": size, "type": media_type}


def files_of(value: Any) -> list[Mapping[str, Any]]:
    """The files a stored attachment value holds (one or several)."""
    items = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
    return [v for v in items if isinstance(v, dict) and "id" in v]
