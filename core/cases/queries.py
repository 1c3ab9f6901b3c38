"""Read side of the case service: who may read what, case lists, filters and the inbox.

Every query is filtered on the company first; the procedures an actor may read are
those of which they hold at least one role (see :meth:`CaseService.holds`). A case of
another company is "not found", never "forbidden".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import Any

from sqlalchemy import Text, and_, cast, exists, func, or_, select

from core.cases.service import Actor, CaseService, CaseView, CompanyRuntime
from core.errors import InvalidInput, NotAllowed
from core.spec.procedures import CompiledProcedure
from core.storage import schema as t

MAX_LIMIT = 200


@dataclass
class CaseFilter:
    """Filters of a case list; every one optional. ``mine``: assigned to me, directly or
    through a role or department I hold."""

    procedure: str | None = None
    step: str | None = None
    status: str | None = None
    assignee: str | None = (
        None  # "person:li", "role:engineer", "department:field" or a bare user name
    )
    mine: bool = False
    q: str | None = None
    created_from: dt.datetime | None = None
    created_to: dt.datetime | None = None
    updated_from: dt.datetime | None = None
    updated_to: dt.datetime | None = None
    limit: int = 50
    offset: int = 0


@dataclass
class CasePage:
    """One page of a case list: the cases and how many match in all."""

    items: list[CaseView]
    total: int
    limit: int
    offset: int
    extra: dict[str, Any] = field(default_factory=dict)


def readable_procedures(svc: CaseService, rt: CompanyRuntime, actor: Actor) -> list[str]:
    """Keys of the procedures whose cases ``actor`` may read: they hold one of its roles."""
    return [key for key, proc in rt.procedures.items() if can_read(svc, rt, actor, proc)]


def can_read(svc: CaseService, rt: CompanyRuntime, actor: Actor, proc: CompiledProcedure) -> bool:
    """Whether ``actor`` may read cases of ``proc`` (holds one of its roles)."""
    return any(svc.holds(actor, rt, proc.key, r) for r in proc.pack.roles)


def require_read(svc: CaseService, actor: Actor, view: CaseView) -> None:
    """Raise NotAllowed unless ``actor`` holds a role of the case's procedure."""
    rt = svc.company(view.company)
    proc = rt.procedures.get(view.procedure)
    if proc is None or not can_read(svc, rt, actor, proc):
        raise NotAllowed(f"reading {view.procedure} cases needs one of its roles")


def _mine_clause(
    svc: CaseService, rt: CompanyRuntime, actor: Actor, procedures: Sequence[str]
) -> Any:
    """Cases assigned to the actor: as a person, a department they are in, or a role they hold."""
    a = t.case_assignee
    parts = [and_(a.c.kind == "person", a.c.ref == actor.username)]
    if actor.departments:
        parts.append(and_(a.c.kind == "department", a.c.ref.in_(sorted(actor.departments))))
    for key in procedures:
        proc = rt.procedures[key]
        roles = sorted(r for r in proc.pack.roles if svc.holds(actor, rt, key, r))
        if roles:
            parts.append(and_(a.c.kind == "role", a.c.ref.in_(roles), t.case.c.procedure == key))
    return exists().where(a.c.case_id == t.case.c.id, a.c.company_id == rt.id, or_(*parts))


def _known_assignee(svc: CaseService, rt: CompanyRuntime, kind: str, ref: str) -> None:
    """Raise InvalidInput naming ``assignee`` unless the company has that person (a member
    or someone its config names), role (of an enabled procedure or the config) or department:
    a misspelt name is an error, not an empty list."""
    company = rt.definition
    if kind == "department":
        known = set(company.departments)
    elif kind == "role":
        known = set(company.roles) | {r for p in rt.procedures.values() for r in p.pack.roles}
    else:
        known = set(company.people)
        if ref not in known:
            with svc.db.read() as conn:
                member = conn.execute(
                    select(t.membership.c.id)
                    .join(t.app_user, t.app_user.c.id == t.membership.c.user_id)
                    .where(t.app_user.c.username == ref, t.membership.c.company_id == rt.id)
                ).first()
            if member is not None:
                return
    if ref not in known:
        hint = get_close_matches(ref, sorted(known), n=1)
        raise InvalidInput(
            f"assignee: no {kind} '{ref}' in company '{rt.key}'"
            + (f" (did you mean {kind}:{hint[0]}?)" if hint else ""),
            errors={"assignee": f"unknown {kind} '{ref}'"},
        )


def list_cases(svc: CaseService, actor: Actor, flt: CaseFilter) -> CasePage:
    """Cases of the actor's company they may read, newest first, filtered and paginated."""
    rt = svc.company(actor.company)
    if not 1 <= flt.limit <= MAX_LIMIT:
        raise InvalidInput(
            f"limit must be between 1 and {MAX_LIMIT}", errors={"limit": "out of range"}
        )
    if flt.offset < 0:
        raise InvalidInput("offset must not be negative", errors={"offset": "out of range"})
    procs = readable_procedures(svc, rt, actor)
    if flt.procedure is not None:
        if flt.procedure not in rt.procedures:
            raise InvalidInput(
                f"unknown procedure '{flt.procedure}'", errors={"procedure": "unknown"}
            )
        if flt.procedure not in procs:
            raise NotAllowed(f"reading {flt.procedure} cases needs one of its roles")
        procs = [flt.procedure]
    c = t.case
    conds: list[Any] = [c.c.company_id == rt.id, c.c.procedure.in_(procs)]
    if flt.step:
        conds.append(c.c.step == flt.step)
    if flt.status:
        if flt.status not in ("open", "closed"):
            raise InvalidInput("status is 'open' or 'closed'", errors={"status": "unknown"})
        conds.append(c.c.status == flt.status)
    if flt.assignee:
        kind, _, ref = flt.assignee.partition(":")
        if not ref:
            kind, ref = "person", kind
        if kind not in ("person", "role", "department"):
            raise InvalidInput(
                "assignee is person:NAME, role:NAME or department:NAME",
                errors={"assignee": "malformed"},
            )
        _known_assignee(svc, rt, kind, ref)
        a = t.case_assignee
        conds.append(exists().where(a.c.case_id == c.c.id, a.c.kind == kind, a.c.ref == ref))
    if flt.mine:
        conds.append(_mine_clause(svc, rt, actor, procs))
    if flt.q:
        needle = f"%{flt.q.lower()}%"
        conds.append(
            or_(
                func.lower(c.c.number).like(needle), func.lower(cast(c.c.fields, Text)).like(needle)
            )
        )
    for col, lo, hi in (
        (c.c.created_at, flt.created_from, flt.created_to),
        (c.c.updated_at, flt.updated_from, flt.updated_to),
    ):
        if lo is not None:
            conds.append(col >= lo)
        if hi is not None:
            conds.append(col < hi)
    with svc.db.read() as conn:
        total = conn.execute(select(func.count()).select_from(c).where(*conds)).scalar_one()
        rows = conn.execute(
            select(c)
            .where(*conds)
            .order_by(c.c.created_at.desc(), c.c.id.desc())
            .limit(flt.limit)
            .offset(flt.offset)
        ).all()
        items = [
            svc._view(rt, r, svc.procedure_for_version(conn, r.procedure_version_id)) for r in rows
        ]
    return CasePage(items, total, flt.limit, flt.offset)


def inbox(svc: CaseService, actor: Actor, *, limit: int = 50, offset: int = 0) -> CasePage:
    """Open cases waiting on the actor, or on a role or department they hold: the nearest
    running deadline first (``next_due_at``), then cases without one, longest waiting first."""
    rt = svc.company(actor.company)
    if not 1 <= limit <= MAX_LIMIT or offset < 0:
        raise InvalidInput(
            f"limit must be between 1 and {MAX_LIMIT}, offset ≥ 0", errors={"limit": "out of range"}
        )
    procs = readable_procedures(svc, rt, actor)
    c = t.case
    conds = [
        c.c.company_id == rt.id,
        c.c.status == "open",
        c.c.procedure.in_(procs),
        _mine_clause(svc, rt, actor, procs),
    ]
    with svc.db.read() as conn:
        total = conn.execute(select(func.count()).select_from(c).where(*conds)).scalar_one()
        rows = conn.execute(
            select(c)
            .where(*conds)
            .order_by(c.c.next_due_at.is_(None), c.c.next_due_at, c.c.updated_at, c.c.id)
            .limit(limit)
            .offset(offset)
        ).all()
        items = [
            svc._view(rt, r, svc.procedure_for_version(conn, r.procedure_version_id)) for r in rows
        ]
    return CasePage(items, total, limit, offset)
