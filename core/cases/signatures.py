"""Signatures on cases: who signed which fields, in which role, and whether it still holds.

An action with ``sign: NAME`` signs the pack's signature ``NAME`` (see
:class:`core.spec.definitions.SignatureDef`) in the actor's role: the commit pipeline
keeps the hash of the covered fields as they are after the action, journals a
``signed`` entry and writes a ``signature`` row. Every later change of one of those
fields voids the signature (a ``signature_void`` entry, naming the fields). A
countersignature (``need: all``) is complete once every role has a valid signature; the
signing action moves the case to its ``to:`` step only then, and stays at its step
before. ``distinct: true``: a person who holds a valid signature of it cannot sign it
again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from core.errors import NotAllowed
from core.spec.definitions import SignatureDef
from core.storage import schema as t
from core.storage.prepared import Prepared, Query

_S = t.signature
#: how a void signature's reason begins; the changed fields' names follow, comma-separated
VOID_REASON = "changed after signing: "
_SEL_VALID = Query(
    select(_S).where(
        _S.c.company_id == bindparam("co"), _S.c.case_id == bindparam("cid"), _S.c.void_at.is_(None)
    )
)
_INS = Prepared(insert(_S).values({c.name: bindparam(c.name) for c in _S.c if c.name != "id"}))
_VOID = Prepared(
    update(_S)
    .where(_S.c.id == bindparam("sid"), _S.c.company_id == bindparam("co"))
    .values(void_at=bindparam("at"), void_reason=bindparam("reason"))
)


def _plain(value: Any) -> Any:
    # one encoding whichever database gave the value back (PostgreSQL's JSONB turns 2.0
    # into 2 and -0.0 into 0): whole floats as integers
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def covered(covers: Iterable[str], fields: Mapping[str, Any]) -> dict[str, Any]:
    """The values a signature vouches for: each covered field's value (absent: null); for
    ``list.field`` entries, the list's items reduced to their ``id`` and the covered
    fields of the items (a whole list named too wins)."""
    doc: dict[str, Any] = {}
    subs: dict[str, list[str]] = {}
    for cover in covers:
        name, _, sub = cover.partition(".")
        if sub:
            subs.setdefault(name, []).append(sub)
        else:
            doc[name] = _plain(fields.get(name))
    for name, wanted in subs.items():
        if name in doc:
            continue
        items = fields.get(name)
        doc[name] = (
            [
                {k: _plain(item.get(k)) for k in ("id", *wanted)}
                for item in items
                if isinstance(item, dict)
            ]
            if isinstance(items, list)
            else None
        )
    return doc


def fields_hash(covers: Iterable[str], fields: Mapping[str, Any]) -> str:
    """SHA-256 of :func:`covered` (canonical JSON)."""
    text = json.dumps(
        covered(covers, fields), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Signing:
    """A signature an action is about to give: which, in which role, and whether it
    completes the set (a countersignature needs every role)."""

    name: str
    role: str
    complete: bool


def valid(conn: Connection, company_id: int, case_id: int) -> list[Any]:
    """The case's signatures that still hold, oldest first."""
    rows = _SEL_VALID.all(conn, {"co": company_id, "cid": case_id})
    return sorted(rows, key=lambda r: r.id)


def plan(
    sdef: SignatureDef,
    name: str,
    existing: Sequence[Any],
    username: str,
    holds: Callable[[str], bool],
) -> Signing:
    """The signature ``username`` gives now, or NotAllowed saying why they cannot sign."""
    mine = [r for r in existing if r.name == name]
    if sdef.distinct and any(r.username == username for r in mine):
        raise NotAllowed(
            f"{username} has signed '{name}' already; it needs another person's signature",
            signature=name,
        )
    signed_roles = {r.role for r in mine}
    held = [r for r in sdef.roles if holds(r)]
    if not held:
        raise NotAllowed(
            f"signing '{name}' needs one of the roles: {', '.join(sdef.roles)}", signature=name
        )
    role = held[0]
    if sdef.need == "all":
        open_roles = [r for r in held if r not in signed_roles]
        if not open_roles:
            raise NotAllowed(
                f"'{name}' has a valid signature for {', '.join(held)} already; "
                f"it still needs: {', '.join(r for r in sdef.roles if r not in signed_roles)}",
                signature=name,
            )
        role = open_roles[0]
        complete = set(sdef.roles) <= signed_roles | {role}
    else:
        complete = True
    return Signing(name, role, complete)


def voided(
    signatures: Mapping[str, SignatureDef],
    existing: Sequence[Any],
    before: Mapping[str, Any],
    after: Mapping[str, Any],
) -> list[tuple[Any, list[str]]]:
    """The valid signatures a change of fields from ``before`` to ``after`` voids, each
    with the covered fields that changed."""
    out = []
    for row in existing:
        sdef = signatures.get(row.name)
        if sdef is None:
            continue
        if fields_hash(sdef.covers, after) == row.fields_hash:
            continue
        changed = [f for f in sdef.covers if covered([f], before) != covered([f], after)]
        out.append((row, changed))
    return out


def touched(
    signatures: Mapping[str, SignatureDef], before: Mapping[str, Any], after: Mapping[str, Any]
) -> bool:
    """Whether a change of fields from ``before`` to ``after`` changes what any of the
    signatures covers. When it does not, it voids none: a valid signature always covers
    the case's fields as they are (the change that altered them voided it)."""
    return any(covered(s.covers, before) != covered(s.covers, after) for s in signatures.values())


def write(
    conn: Connection,
    company_id: int,
    case_id: int,
    now: dt.datetime,
    signing: Signing | None,
    signed_hash: str | None,
    signed_seq: int | None,
    username: str,
    voids: Sequence[tuple[Any, list[str]]],
) -> None:
    """Write what a change did to signatures (after its journal entries were appended)."""
    for row, changed in voids:
        _VOID.execute(
            conn,
            {
                "sid": row.id,
                "co": company_id,
                "at": now,
                "reason": VOID_REASON + ", ".join(changed),
            },
        )
    if signing is not None:
        assert signed_hash is not None and signed_seq is not None
        _INS.execute(
            conn,
            {
                "company_id": company_id,
                "case_id": case_id,
                "name": signing.name,
                "role": signing.role,
                "username": username,
                "signed_at": now,
                "fields_hash": signed_hash,
                "journal_seq": signed_seq,
                "void_at": None,
                "void_reason": None,
            },
        )


@dataclass(frozen=True)
class Signed:
    """One signature as given: which, in which role, by whom, when; a void one says when
    it was voided and which covered fields changed."""

    id: int
    name: str
    role: str
    username: str
    signed_at: dt.datetime
    fields_hash: str
    void_at: dt.datetime | None = None
    void_reason: str | None = None

    @property
    def changed(self) -> list[str]:
        """The covered fields whose change voided it (none while it holds)."""
        reason = self.void_reason or ""
        if not reason.startswith(VOID_REASON):
            return []
        return [n.strip() for n in reason[len(VOID_REASON) :].split(",") if n.strip()]


@dataclass
class Progress:
    """Where one of the pack's signatures stands on a case: every signature given (void
    ones included, oldest first) and the roles whose signature it still needs."""

    name: str
    definition: SignatureDef
    signed: list[Signed]
    waiting: list[str]

    @property
    def valid(self) -> list[Signed]:
        return [s for s in self.signed if s.void_at is None]

    @property
    def complete(self) -> bool:
        return not self.waiting


def progress(
    defs: Mapping[str, SignatureDef], rows: Iterable[Mapping[str, Any]]
) -> dict[str, Progress]:
    """Each signature of ``defs`` on a case whose signature rows are ``rows``
    (:func:`of_case`): a countersignature (``need: all``) waits for every role without a
    valid signature, one of ``need: any`` for any of its roles until one signs."""
    given: dict[str, list[Signed]] = {name: [] for name in defs}
    for r in sorted(rows, key=lambda r: r["id"]):
        if r["name"] in given:
            given[r["name"]].append(
                Signed(
                    r["id"],
                    r["name"],
                    r["role"],
                    r["username"],
                    r["signed_at"],
                    r["fields_hash"],
                    r["void_at"],
                    r["void_reason"],
                )
            )
    out = {}
    for name, sdef in defs.items():
        held = {s.role for s in given[name] if s.void_at is None}
        if sdef.need == "all":
            waiting = [r for r in sdef.roles if r not in held]
        else:
            waiting = [] if held else list(sdef.roles)
        out[name] = Progress(name, sdef, given[name], waiting)
    return out


def of_case(conn: Connection, company_id: int, case_id: int) -> list[dict[str, Any]]:
    """Every signature of a case, void ones included, oldest first (for its records)."""
    rows = conn.execute(
        select(_S).where(_S.c.company_id == company_id, _S.c.case_id == case_id).order_by(_S.c.id)
    )
    return [dict(r._mapping) for r in rows]
