"""Attachments: uploaded files, checked, stored by SHA-256, and claimed by a case's action.

An upload names the procedure and the ``attachment`` field it is for; its size is
counted while it is written (``max_size``), its type is sniffed from the content by
libmagic (``accept``: never the name or the declared type), its SHA-256 names it in the
company's store (:mod:`core.storage.blobs` or a plugin's), and a row records who uploaded
it. An opening or action then gives the upload's id as the field's value: the commit
pipeline replaces the id with what the upload row says (id, name, size, type, sha256) —
so the journal holds the hash — and claims the upload for the case in the same
transaction. An upload no case claimed within the company's ``orphan_hours`` is swept by
the worker (:func:`sweep`), with its content when nothing else refers to it.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import tempfile
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import magic
from sqlalchemy import Connection, bindparam, delete, insert, select, update

from core.errors import NotAllowed, NotFound, TooLarge, UnsupportedType
from core.spec.definitions import FieldDef
from core.spec.procedures import CompiledProcedure
from core.storage import schema as t
from core.storage.blobs import BlobStore, default_root, folder_store

#: what an attachment field takes when its pack names no ``accept:``
DEFAULT_ACCEPT = (
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
)
#: the largest file a field without ``max_size:`` takes
DEFAULT_MAX_SIZE = 20 * 1024 * 1024
CHUNK = 64 * 1024
SNIFF_BYTES = 8192
SWEEP_BATCH = 500

_A = t.attachment
_SEL_UPLOADS = select(_A).where(
    _A.c.company_id == bindparam("co"), _A.c.id.in_(bindparam("ids", expanding=True))
)
_CLAIM = (
    update(_A)
    .where(
        _A.c.company_id == bindparam("co"),
        _A.c.id.in_(bindparam("ids", expanding=True)),
        _A.c.case_id.is_(None),
    )
    .values(case_id=bindparam("cid"))
)


@dataclass(frozen=True)
class Upload:
    """A stored upload as the API returns it."""

    id: int
    sha256: str
    name: str
    size: int
    type: str

    def stored(self) -> dict[str, Any]:
        """The field value a case keeps (and the journal records)."""
        return {
            "id": self.id,
            "sha256": self.sha256,
            "name": self.name,
            "size": self.size,
            "type": self.type,
        }


def max_size(fdef: FieldDef) -> int:
    """The largest file ``fdef`` takes, in bytes."""
    return fdef.max_size or DEFAULT_MAX_SIZE


def accepts(fdef: FieldDef, media_type: str) -> bool:
    """Whether a sniffed ``media_type`` is one ``fdef`` accepts (``image/*`` patterns too)."""
    return any(fnmatch.fnmatchcase(media_type, p) for p in fdef.accept or DEFAULT_ACCEPT)


def sniff(head: bytes) -> str:
    """The MIME type of content starting with ``head`` (libmagic), e.g. ``image/png``."""
    if not head:
        return "application/x-empty"
    return str(magic.from_buffer(head, mime=True))


def store_for(svc: Any, company: str) -> BlobStore:
    """The attachment store of ``company`` (``attachments: {store: …}``), opened once."""
    cache: dict[str, BlobStore] = svc.__dict__.setdefault("_attachment_stores", {})
    store = cache.get(company)
    if store is None:
        conf = svc.company(company).definition.attachments
        if conf.store == "folder":
            store = folder_store(company, conf.settings)
        else:
            factory = svc.catalog.extensions.stores.get(conf.store)
            if factory is None:
                raise NotFound(f"attachment store '{conf.store}' is not installed")
            store = factory.open(company, dict(conf.settings))
        cache[company] = store
    return store


def field_paths(pack: Any) -> dict[str, FieldDef]:
    """Every attachment field of a pack by the name uploads are made for: ``photos``, and
    ``defects.photos`` for the attachment field ``photos`` of the list ``defects``' items."""
    out: dict[str, FieldDef] = {}
    for name, fdef in pack.fields.items():
        if fdef.type == "attachment":
            out[name] = fdef
        for sub, sdef in (fdef.of or {}).items() if fdef.type == "list" else ():
            if sdef.type == "attachment":
                out[f"{name}.{sub}"] = sdef
    return out


def _field(svc: Any, actor: Any, procedure: str, field: str) -> tuple[Any, FieldDef]:
    rt = svc.company(actor.company)
    proc = rt.procedures.get(procedure)
    if proc is None:
        raise NotFound(f"procedure '{procedure}' is not enabled for this company")
    if not any(svc.holds(actor, rt, proc.key, r) for r in proc.pack.roles):
        raise NotAllowed(f"uploading to {procedure} cases needs one of its roles")
    paths = field_paths(proc.pack)
    fdef = paths.get(field)
    if fdef is None:
        raise NotFound(
            f"'{field}' is not an attachment field of {procedure} "
            f"(attachment fields: {', '.join(paths) or 'none'})"
        )
    return rt, fdef


def check_declared(svc: Any, actor: Any, procedure: str, field: str, length: int | None) -> None:
    """Refuse an upload before its body is read: the field is unknown, the actor may not
    upload, or the declared length is already over the field's limit (413)."""
    _, fdef = _field(svc, actor, procedure, field)
    limit = max_size(fdef)
    if length is not None and length > limit + 64 * 1024:  # room for the multipart framing
        raise TooLarge(
            f"{field} takes files up to {limit} bytes; this request is {length} bytes",
            limit=limit,
        )


def safe_name(name: str | None) -> str:
    """The file name as given, without folders or control characters (for display only)."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C").strip()
    return base[:255] or "file"


def upload(
    svc: Any, actor: Any, procedure: str, field: str, filename: str | None, content: BinaryIO
) -> Upload:
    """Store one uploaded file for ``procedure``'s attachment ``field``.

    Raises :class:`~core.errors.TooLarge` (413) or :class:`~core.errors.UnsupportedType`
    (415) — then nothing is kept, neither content nor row.
    """
    rt, fdef = _field(svc, actor, procedure, field)
    limit = max_size(fdef)
    incoming = default_root() / ".incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size, head = 0, b""
    with tempfile.NamedTemporaryFile(dir=incoming, delete=False) as tmp:
        tmp_path = Path(tmp.name)
        try:
            while chunk := content.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"{field} takes files up to {limit} bytes", limit=limit)
                if len(head) < SNIFF_BYTES:
                    head += chunk[: SNIFF_BYTES - len(head)]
                digest.update(chunk)
                tmp.write(chunk)
        except BaseException:
            tmp.close()
            tmp_path.unlink(missing_ok=True)
            raise
    try:
        media_type = sniff(head)
        if not accepts(fdef, media_type):
            raise UnsupportedType(
                f"{field} does not take {media_type} files "
                f"(it takes: {', '.join(fdef.accept or DEFAULT_ACCEPT)})",
                sniffed=media_type,
            )
        sha = digest.hexdigest()
        store_for(svc, rt.key).save(sha, tmp_path)
    finally:
        tmp_path.unlink(missing_ok=True)
    name = safe_name(filename)
    with svc.db.write() as conn:
        upload_id = conn.execute(
            insert(_A).values(
                company_id=rt.id,
                case_id=None,
                procedure=procedure,
                field=field,
                sha256=sha,
                size=size,
                media_type=media_type,
                filename=name,
                uploaded_by=actor.username,
                uploaded_at=svc.clock.now(),
            )
        ).inserted_primary_key[0]
    return Upload(int(upload_id), sha, name, size, media_type)


def resolve(
    conn: Connection,
    company_id: int,
    proc: CompiledProcedure,
    values: dict[str, Any],
    case_id: int | None,
    errors: dict[str, str],
    uploader: str | None = None,
) -> list[int]:
    """Replace the upload ids given for attachment fields in ``values`` — and for the
    attachment fields of list items — by what their rows say; problems go to ``errors``
    by field. Returns the ids the case will claim.

    An upload no case holds yet can be claimed only by the person who uploaded it
    (``uploader``; None for the engine's own changes): upload ids are sequential, so
    anyone could otherwise take a colleague's file into their case by guessing one."""
    # (field in values, item or None, path the uploads were made for, definition, refs)
    wanted: list[tuple[str, dict[str, Any] | None, str, FieldDef, list[dict[str, Any]]]] = []
    for name, value in values.items():
        fdef = proc.pack.fields.get(name)
        if fdef is None or value is None:
            continue
        if fdef.type == "attachment":
            wanted.append((name, None, name, fdef, value if isinstance(value, list) else [value]))
        elif fdef.type == "list" and isinstance(value, list):
            subs = [(s, d) for s, d in (fdef.of or {}).items() if d.type == "attachment"]
            for item in value:
                for sub, sdef in subs:
                    refs = item.get(sub) if isinstance(item, dict) else None
                    if refs is not None:
                        refs = refs if isinstance(refs, list) else [refs]
                        wanted.append((name, item, f"{name}.{sub}", sdef, refs))
    if not wanted:
        return []
    ids = [ref["id"] for *_, refs in wanted for ref in refs]
    rows = {r.id: r for r in conn.execute(_SEL_UPLOADS, {"co": company_id, "ids": ids})}
    claimed: list[int] = []
    for name, item, path, fdef, refs in wanted:
        where = "" if item is None else f"item {item.get('id')}: {path.partition('.')[2]}: "
        out = []
        for ref in refs:
            row = rows.get(ref["id"])
            if row is None:
                errors[name] = f"{where}there is no upload {ref['id']}"
                break
            problem = None
            if row.case_id is not None and row.case_id != case_id:
                problem = f"upload {row.id} belongs to another case"
            elif row.case_id is None and uploader is not None and row.uploaded_by != uploader:
                problem = f"upload {row.id} was made by someone else; upload the file yourself"
            elif (row.procedure, row.field) != (proc.key, path):
                problem = f"upload {row.id} was made for {row.procedure}.{row.field}"
            elif row.size > max_size(fdef) or not accepts(fdef, row.media_type):
                problem = f"upload {row.id} ({row.media_type}, {row.size} bytes) does not fit"
            if problem is not None:
                errors[name] = where + problem
                break
            out.append(Upload(row.id, row.sha256, row.filename, row.size, row.media_type).stored())
            if row.case_id is None and row.id not in claimed:
                claimed.append(row.id)
        else:
            stored = out if fdef.multiple else out[0]
            if item is None:
                values[name] = stored
            else:
                item[path.partition(".")[2]] = stored
    return claimed


def copy_for(
    conn: Connection,
    company_id: int,
    from_case: int,
    proc: CompiledProcedure,
    values: dict[str, Any],
    username: str,
    now: dt.datetime,
) -> None:
    """Files of case ``from_case`` that a rule copies into a new case of ``proc``
    (``open_case: {copy: {photos: item.photos}}``): each becomes an upload of its own for
    the new case's field — the same stored content, no second copy of it — which the new
    case claims as if just uploaded, its field's ``max_size``/``accept`` checked. The new
    case's readers can then open it, and it follows the new case's retention."""
    wanted = {
        name: value
        for name, value in values.items()
        if name in proc.pack.fields and proc.pack.fields[name].type == "attachment"
    }
    refs = {
        ref["id"]
        for value in wanted.values()
        for ref in (value if isinstance(value, list) else [value])
        if isinstance(ref, dict) and isinstance(ref.get("id"), int)
    }
    if not refs:
        return
    rows = {
        r.id: r
        for r in conn.execute(_SEL_UPLOADS, {"co": company_id, "ids": sorted(refs)})
        if r.case_id == from_case
    }
    for name, value in wanted.items():
        copies = []
        for ref in value if isinstance(value, list) else [value]:
            row = rows.get(ref.get("id")) if isinstance(ref, dict) else None
            if row is None:  # not the opening case's file: left for resolve() to refuse
                copies.append(ref)
                continue
            inserted = conn.execute(
                insert(_A).values(
                    company_id=company_id,
                    case_id=None,
                    procedure=proc.key,
                    field=name,
                    sha256=row.sha256,
                    size=row.size,
                    media_type=row.media_type,
                    filename=row.filename,
                    uploaded_by=username,
                    uploaded_at=now,
                )
            ).inserted_primary_key
            assert inserted is not None  # an INSERT of one row
            copies.append({"id": int(inserted[0])})
        values[name] = copies if isinstance(value, list) else copies[0]


def claim(conn: Connection, company_id: int, case_id: int, ids: list[int]) -> None:
    """The case ``case_id`` now holds these uploads (in the action's transaction)."""
    if ids:
        conn.execute(_CLAIM, {"co": company_id, "ids": ids, "cid": case_id})


def case_uploads(conn: Connection, company_id: int, case_id: int) -> list[dict[str, Any]]:
    """Every upload a case holds, oldest first (for its records)."""
    rows = conn.execute(
        select(_A).where(_A.c.company_id == company_id, _A.c.case_id == case_id).order_by(_A.c.id)
    )
    return [dict(r._mapping) for r in rows]


def find(svc: Any, actor: Any, upload_id: int) -> dict[str, Any]:
    """The row of upload ``upload_id`` of the actor's company.

    Another company's upload, and an unclaimed one of someone else, are "not found";
    whether the actor may read the upload's case is the caller's check (the case's
    procedure roles, ``core.cases.queries.require_read``)."""
    rt = svc.company(actor.company)
    with svc.db.read() as conn:
        row = conn.execute(_SEL_UPLOADS, {"co": rt.id, "ids": [upload_id]}).first()
    if row is None or (row.case_id is None and row.uploaded_by != actor.username):
        raise NotFound(f"attachment {upload_id} not found")
    return dict(row._mapping)


def content(svc: Any, company: str, row: Mapping[str, Any]) -> BinaryIO:
    """The stored content of an upload row (NotFound when the store lost it)."""
    try:
        return store_for(svc, company).open(row["sha256"])
    except FileNotFoundError:
        raise NotFound(f"the content of attachment {row['id']} is gone from the store") from None


def sweep(svc: Any, now: dt.datetime) -> int:
    """Delete uploads no case claimed within their company's ``orphan_hours``, and their
    content where no other upload of the company has the same hash. Returns how many."""
    removed = 0
    for key, rt in svc.companies.items():
        cutoff = now - dt.timedelta(hours=rt.definition.attachments.orphan_hours)
        with svc.db.write() as conn:
            rows = conn.execute(
                select(_A.c.id, _A.c.sha256)
                .where(_A.c.case_id.is_(None), _A.c.uploaded_at < cutoff, _A.c.company_id == rt.id)
                .limit(SWEEP_BATCH)
            ).all()
            if not rows:
                continue
            conn.execute(delete(_A).where(_A.c.id.in_([r.id for r in rows])))
            digests = {r.sha256 for r in rows}
            still = set(
                conn.execute(
                    select(_A.c.sha256).where(
                        _A.c.company_id == rt.id, _A.c.sha256.in_(sorted(digests))
                    )
                ).scalars()
            )
            store = store_for(svc, key)
            for sha in digests - still:
                store.delete(sha)
            removed += len(rows)
    return removed
