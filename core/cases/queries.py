"""Read side of the case service: who may read what, case lists, filters and the inbox.

Every query is filtered on the company first; the procedures an actor may read are
those of which they hold at least one role (see :meth:`CaseService.holds`). A case of
another company is "not found", never "forbidden".
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from difflib import get_close_matches
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    any_,
    bindparam,
    exists,
    func,
    literal_column,
    select,
    tuple_,
    union,
    union_all,
)

from core.cases import search
from core.cases.service import Actor, CaseService, CaseView, CompanyRuntime
from core.errors import InvalidInput, NotAllowed
from core.spec.procedures import CompiledProcedure
from core.storage import schema as t

MAX_LIMIT = 200
#: a list counts its matches up to here; beyond, it says "more than" (the count is
#: work on every page, and a count of a company's whole history would grow with it)
COUNT_CAP = 10_000


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
    after: str | None = None  # the ``next`` of the page before (keyset pagination)
    before: str | None = None  # the ``previous`` of the page after


@dataclass
class CasePage:
    """One page of a case list: the cases and how many match in all."""

    items: list[CaseView]
    total: int
    limit: int
    offset: int
    total_exact: bool = True  # False: there are more than ``total`` (COUNT_CAP)
    extra: dict[str, Any] = field(default_factory=dict)
    #: where the next page starts (``after=``), or None on the last page
    next: str | None = None
    #: where the page before ends (``before=``), or None on the first page
    previous: str | None = None


# -- keyset pagination -----------------------------------------------------------------
# A page ends at a position of the list's order — (opening instant, id) newest first for
# case lists, (next due instant, id) for the inbox — and the next page is read from the
# index right after it: a deep page costs what the first does (an offset reads and drops
# every entry before it), and a case opened meanwhile neither repeats nor skips an entry.
# The page before is read the same way backwards from the position of a page's first
# entry (``before``): the index walked the other way, one entry more than a page to tell
# whether it is the first. The cursor is a position, in an opaque URL-safe text naming
# which order it belongs to.


def _cursor(kind: str, at: dt.datetime, case_id: int) -> str:
    raw = json.dumps([kind, at.astimezone(dt.UTC).isoformat(), case_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _position(kind: str, cursor: str, name: str = "after") -> tuple[dt.datetime, int]:
    """The position ``cursor`` names in an order of ``kind``; InvalidInput naming the
    parameter ``name`` (``after`` or ``before``) when it is not a cursor of such a list."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        got, at, case_id = json.loads(raw)
        moment = dt.datetime.fromisoformat(at)
        if got == kind and type(case_id) is int and 0 <= case_id < 2**63 and moment.tzinfo:
            return moment, case_id
    except (binascii.Error, ValueError, TypeError):
        pass
    if name == "before":
        raise InvalidInput(
            "before: not the 'previous' of a page of this list (copy it from the page after)",
            errors={"before": "not a cursor of this list"},
        )
    raise InvalidInput(
        "after: not the 'next' of a page of this list (copy it from the page before)",
        errors={"after": "not a cursor of this list"},
    )


def _paging(
    kind: str, after: str | None, before: str | None, offset: int
) -> tuple[tuple[dt.datetime, int] | None, tuple[dt.datetime, int] | None]:
    """The positions a page starts after and ends before (at most one of them)."""
    if after is not None and before is not None:
        raise InvalidInput(
            "after and before: a page is read from one of them, not both",
            errors={"before": "given with after"},
        )
    if before is not None and offset:
        raise InvalidInput(
            "before: reads the page ending there; an offset cannot be added to it",
            errors={"offset": "given with before"},
        )
    return (
        None if after is None else _position(kind, after),
        None if before is None else _position(kind, before, "before"),
    )


def _seek(
    cols: Sequence[Any], here: Sequence[Any] | None, way: str | None, newest_first: bool
) -> tuple[list[Any], list[Any]]:
    """How a list ordered by ``cols`` (descending with ``newest_first``) is read from the
    position ``here``: the condition (none from the list's start) and the order. ``way``
    "after": the entries past the position, in the list's order; "before": the entries
    ahead of it, nearest first (the list's order reversed)."""
    descending = newest_first != (way == "before")
    order = [col.desc() if descending else col for col in cols]
    if way is None or here is None:
        return [], order
    at, pos = (cols[0], here[0]) if len(cols) == 1 else (tuple_(*cols), tuple_(*here))
    return [at < pos if descending else at > pos], order


def _way(after: Any, before: Any) -> str | None:
    return "after" if after is not None else "before" if before is not None else None


def _trim(rows: Sequence[Any], limit: int, backwards: bool) -> tuple[list[Any], bool]:
    """The page of a read of up to ``limit`` + 1 rows, nearest the position first, in the
    list's order, and whether there were more (a page beyond it in the read's direction).
    A backward read that finds no more is the start of the list: the caller reads the
    first page forwards instead (it may hold more rows than were before the position)."""
    page = list(rows[:limit])
    return (page[::-1] if backwards else page), len(rows) > limit


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


def _mine(
    rt: CompanyRuntime,
    mine: Sequence[tuple[str, str, str]],
    conds: Sequence[Any],
    n: int,
    after: tuple[dt.datetime, int] | None,
    before: tuple[dt.datetime, int] | None = None,
) -> tuple[Any, Any]:
    """The actor's cases matching ``conds``: the statement of the first ``n`` newest first
    (with ``before``: the ``n`` nearest before it, oldest first), and the capped count.

    Each queue (a person, a department, a role of one procedure) is read newest first from
    its range of ix_case_assignee_mine — joined to its cases only when there are filters
    ``conds`` — and stops after ``n`` matches; the heads are merged. The work follows the
    page and the number of queues, not how many cases wait on the actor (a sort over
    every one of them did: 92 ms at 200,000 cases, 2 s at a million)."""
    # an alias: the assignee filter's own EXISTS over case_assignee must not correlate to it
    a, c = t.case_assignee.alias("queue"), t.case

    def arm(kind: str, ref: str, procedure: str) -> Any:
        q = select(a.c.case_id, a.c.created_at)
        if conds:
            q = q.join(c, c.c.id == a.c.case_id)
        return q.where(
            a.c.company_id == rt.id,
            a.c.kind == kind,
            a.c.ref == ref,
            a.c.procedure == procedure,
            *conds,
        )

    way = _way(after, before)
    start, order = _seek((a.c.created_at, a.c.case_id), after or before, way, True)
    # each head is its own subquery: SQLite allows no ORDER BY/LIMIT directly in a UNION arm
    heads = union_all(
        *(
            select(h.c.case_id, h.c.created_at)
            for h in (arm(*q).where(*start).order_by(*order).limit(n).subquery() for q in mine)
        )
    ).subquery()
    merged = _seek((heads.c.created_at, heads.c.case_id), None, way, True)[1]
    page = select(heads.c.case_id, heads.c.created_at).distinct().order_by(*merged)
    # each queue counted up to the cap (see _inbox_count)
    capped = [arm(*q).with_only_columns(a.c.case_id).limit(COUNT_CAP + 1).subquery() for q in mine]
    every = union(*(select(q.c.case_id) for q in capped)).subquery()
    return page, select(every.c.case_id)


def _queue(company_id: int, kind: str, ref: str, procedure: str) -> Any:
    """The cases of one queue (an index range of ix_case_assignee_inbox)."""
    a = t.case_assignee
    return select(a.c.case_id).where(
        a.c.company_id == company_id, a.c.kind == kind, a.c.ref == ref, a.c.procedure == procedure
    )


def _capped_count(conn: Any, query: Any) -> tuple[int, bool]:
    """How many rows ``query`` gives, counting at most COUNT_CAP + 1: (count, exact)."""
    n = conn.execute(
        select(func.count()).select_from(query.limit(COUNT_CAP + 1).subquery())
    ).scalar_one()
    return min(n, COUNT_CAP), n <= COUNT_CAP


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
    # the company and the procedures: what each queue of "my cases" holds already
    readable = c.c.procedure.in_(procs)
    base: list[Any] = [c.c.company_id == rt.id, readable]
    conds: list[Any] = []  # the other filters
    if flt.step:
        conds.append(c.c.step == flt.step)
    if flt.status:
        if flt.status not in ("open", "closed"):
            raise InvalidInput("status is 'open' or 'closed'", errors={"status": "unknown"})
        if not (flt.mine and flt.status == "open"):  # a queue holds open cases only
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
    found = None
    if flt.q:
        found = search.matched("sqlite" if svc.db.is_sqlite else "postgresql", rt.id, flt.q)
        if found is None:
            raise InvalidInput(
                "q: search for two or more letters or digits in a row (a name, a phone "
                "number or its last digits, a word of the description)",
                errors={"q": "too short"},
            )
    for col, lo, hi in (
        (c.c.created_at, flt.created_from, flt.created_to),
        (c.c.updated_at, flt.updated_from, flt.updated_to),
    ):
        if lo is not None:
            conds.append(col >= lo)
        if hi is not None:
            conds.append(col < hi)
    after, before = _paging("cases", flt.after, flt.before, flt.offset)
    mine = queues(svc, rt, actor, procs) if flt.mine else []
    if flt.mine and not mine:
        return CasePage([], 0, flt.limit, flt.offset)
    # one more than a page: whether there is one after it (one before it, backwards)
    want = flt.limit + 1
    with svc.db.read() as conn:
        if found is not None:
            if mine:  # the text search's matches lead; the queues filter them
                conds.append(c.c.id.in_(union(*(_queue(rt.id, *q) for q in mine))))
            rows, total, exact, backwards = _search_page(
                conn, rt, found, readable, conds, flt, after, before
            )
            if not backwards:  # read backwards up to the list's start: its first page
                before = None
        elif mine:
            page, matching = _mine(rt, mine, conds, flt.offset + want, after, before)
            total, exact = _capped_count(conn, matching)
            ids = [r.case_id for r in conn.execute(page.limit(want).offset(flt.offset))]
            by_id = {r.id: r for r in conn.execute(_CASES_BY_ID, {"co": rt.id, "ids": ids})}
            rows = [by_id[i] for i in ids if i in by_id]
        else:
            # the count is of the whole list; the page starts after the cursor (or ends
            # before it, read backwards)
            start, order = _seek(
                (c.c.created_at, c.c.id), after or before, _way(after, before), True
            )
            listing = (
                select(c)
                .where(*base, *conds, *start)
                .order_by(*order)
                .limit(want)
                .offset(flt.offset)
            )
            rows = list(conn.execute(listing))
            total, exact = _capped_count(conn, select(c.c.id).where(*base, *conds))
        rows, more = _trim(rows, flt.limit, before is not None)
        if before is not None and not more:
            return list_cases(svc, actor, replace(flt, before=None))
        items = [
            svc._view(rt, r, svc.procedure_for_version(conn, r.procedure_version_id)) for r in rows
        ]
    last = items[-1] if items and (more or before) else None
    first = items[0] if items and (after or before or flt.offset) else None
    return CasePage(
        items,
        total,
        flt.limit,
        flt.offset,
        total_exact=exact,
        next=None if last is None else _cursor("cases", last.created_at, last.id),
        previous=None if first is None else _cursor("cases", first.created_at, first.id),
    )


#: a search takes the matches from its text index first, up to this many (see _search_page)
SEARCH_BY_ID = COUNT_CAP


def _search_page(
    conn: Any,
    rt: CompanyRuntime,
    found: tuple[Any, Any, Any],
    readable: Any,
    conds: Sequence[Any],
    flt: CaseFilter,
    after: tuple[dt.datetime, int] | None,
    before: tuple[dt.datetime, int] | None,
) -> tuple[list[Any], int, bool, bool]:
    """The rows of a text search's page (one more than a page, nearest the cursor first),
    the count (and whether it is exact), and whether the rows were read backwards (a
    read back to the list's start gives its first page instead): matches newest first
    by case id, the order cases were opened in. ``readable``: the condition on the
    procedures the actor may read; ``conds``: the list's other filters.

    The text index is asked first for up to SEARCH_BY_ID matches, in its own order (on
    SQLite FTS5's rowid order, on PostgreSQL the GIN index's bitmap, by table page), and
    the cases among them the list holds are taken by primary key. When that is every
    match, the count and the page are at hand, wherever in the history the matches lie
    (an old customer's 1,000 cases at a million: 20 ms on SQLite, 80-120 ms on
    PostgreSQL, where a page read and a count each read the matches: 205 ms).
    With more matches the page is read from the text index newest first, joined with the
    cases, and stops there — on SQLite in FTS5's rowid order, on PostgreSQL along the
    primary key or from the GIN index, as its planner chooses (a symptom a quarter of a
    million cases share: 0.2 ms); the count is past the cap when the matches read first
    are all in the list, and is counted only when some were not (another filter)."""
    c = t.case
    source, match, key = found
    want = flt.limit + 1
    first = select(key).select_from(source).where(match).limit(SEARCH_BY_ID + 1)
    matches = list(conn.execute(first).scalars())
    every = list(  # those of the matches the list holds, newest first
        conn.execute(
            select(c.c.id)
            .where(_among(c.c.id, matches, conn), _company_of_ids(rt.id), readable, *conds)
            .order_by(c.c.id.desc())
        ).scalars()
    )
    if len(matches) <= SEARCH_BY_ID:  # every match is at hand
        ids = every
        if after is not None:
            ids = [i for i in every if i < after[1]]
        elif before is not None:
            ids = [i for i in reversed(every) if i > before[1]]
            if len(ids) <= flt.limit:  # no page before this one: the first page, at hand
                ids, before = every, None
        page = ids[flt.offset : flt.offset + want]
        by_id = {r.id: r for r in conn.execute(_CASES_BY_ID, {"co": rt.id, "ids": page})}
        rows = [by_id[i] for i in page if i in by_id]
        return rows, min(len(every), COUNT_CAP), len(every) <= COUNT_CAP, before is not None
    joined = source.join(c, c.c.id == key)
    here = after or before  # (the search's order is by id alone)
    start, order = _seek((key,), here and here[1:], _way(after, before), True)
    where = (match, c.c.company_id == rt.id, readable, *conds)
    listing = select(c).select_from(joined).where(*where, *start).order_by(*order)
    rows = list(conn.execute(listing.limit(want).offset(flt.offset)))
    if before is not None and len(rows) <= flt.limit:  # back at the start: the first page
        newest = _seek((key,), None, None, True)[1]
        rows = list(
            conn.execute(select(c).select_from(joined).where(*where).order_by(*newest).limit(want))
        )
        before = None
    if len(every) > COUNT_CAP:  # past the cap among the matches already read
        return rows, COUNT_CAP, False, before is not None
    total, exact = _capped_count(conn, select(key).select_from(joined).where(*where))
    return rows, total, exact, before is not None


def queues(
    svc: CaseService, rt: CompanyRuntime, actor: Actor, procedures: Sequence[str]
) -> list[tuple[str, str, str]]:
    """The (kind, ref, procedure) queues whose cases wait on ``actor``: their own, their
    departments', and those of the roles they hold in each procedure they may read."""
    out = []
    for key in procedures:
        proc = rt.procedures[key]
        out.append(("person", actor.username, key))
        out.extend(("department", d, key) for d in sorted(actor.departments))
        out.extend(
            ("role", r, key) for r in sorted(proc.pack.roles) if svc.holds(actor, rt, key, r)
        )
    return out


def _queue_arm(i: int, ordered: bool, start: str | None = None) -> Any:
    """Queue ``i`` of a statement: its cases (ordered and limited: the queue's head; with
    ``start`` "after", from the position ``(:at_due, :at_id)`` on; "before", the entries
    before it, nearest first), one range of ix_case_assignee_inbox; kind, ref and
    procedure are parameters ``k{i}``…"""
    a = t.case_assignee
    q = select(a.c.case_id, a.c.due_at).where(
        a.c.company_id == bindparam("co"),
        a.c.kind == bindparam(f"k{i}"),
        a.c.ref == bindparam(f"r{i}"),
        a.c.procedure == bindparam(f"p{i}"),
    )
    here: tuple[Any, ...] = (bindparam("at_due", type_=a.c.due_at.type), bindparam("at_id"))
    cond, order = _seek((a.c.due_at, a.c.case_id), here, start, False)
    q = q.where(*cond)
    return q.order_by(*order).limit(bindparam("n")) if ordered else q


@functools.lru_cache(maxsize=64)
def _inbox_page(queue_count: int, start: str | None) -> Any:
    """The page statement for an actor with ``queue_count`` queues (from a cursor on, or
    backwards from one: ``start``, see _queue_arm), built once (building it cost more than
    running it)."""
    # each head is its own subquery: SQLite allows no ORDER BY/LIMIT directly in a UNION arm
    arms = [_queue_arm(i, True, start).subquery() for i in range(queue_count)]
    heads = union_all(*(select(h.c.case_id, h.c.due_at) for h in arms)).subquery()
    order = _seek((heads.c.due_at, heads.c.case_id), None, start, False)[1]
    return (
        select(heads.c.case_id, heads.c.due_at)
        .distinct()
        .order_by(*order)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )


@functools.lru_cache(maxsize=64)
def _inbox_count(queue_count: int) -> Any:
    """The capped count of the whole inbox of ``queue_count`` queues, built once."""
    # each queue counted up to the cap: one longer than it makes the union longer too,
    # and the union then dedupes at most queues × cap entries, not every waiting case
    capped = [_queue_arm(i, False).limit(bindparam("cap")).subquery() for i in range(queue_count)]
    every = union(*(select(q.c.case_id) for q in capped)).subquery()
    return select(func.count()).select_from(
        select(every.c.case_id).limit(bindparam("cap")).subquery()
    )


def _company_of_ids(co: Any) -> Any:
    """The company condition of a read of cases given by id, written as ``company_id + 0``
    (which no index holds) so the ids are looked up by primary key whatever the
    statistics say. SQLite's are sampled (``analysis_limit``): they put a company's cases
    at a thousand whatever their number, and SQLite read 10,000 cases given by id by
    walking the company's whole index (113 ms against 11 ms by rowid, at a million)."""
    return t.case.c.company_id + literal_column("0") == co


def _among(col: Any, ids: list[int], conn: Any) -> Any:
    """``col`` among ``ids``: on PostgreSQL as one array (reading 10,000 cases given by
    id took 57 ms with an id per parameter, 22 ms with one array), on SQLite as a list."""
    if conn.dialect.name == "sqlite":
        return col.in_(ids)
    return col == any_(bindparam("among", ids, type_=ARRAY(BigInteger)))


_CASES_BY_ID = select(t.case).where(
    _company_of_ids(bindparam("co")), t.case.c.id.in_(bindparam("ids", expanding=True))
)


def inbox(
    svc: CaseService,
    actor: Actor,
    *,
    limit: int = 50,
    offset: int = 0,
    after: str | None = None,
    before: str | None = None,
) -> CasePage:
    """Open cases waiting on the actor, or on a role or department they hold: the nearest
    running deadline first (``next_due_at``), then cases without one, oldest first. The
    page starts after the position ``after`` (a page's ``next``) or ends before
    ``before`` (a page's ``previous``).

    Each queue is read in that order from its index, at most ``offset + limit`` entries,
    and the heads are merged: the cost follows the page and the number of queues, not how
    many cases the company keeps. ``total`` counts the actor's distinct open cases from the
    same index.
    """
    rt = svc.company(actor.company)
    if not 1 <= limit <= MAX_LIMIT or offset < 0:
        raise InvalidInput(
            f"limit must be between 1 and {MAX_LIMIT}, offset ≥ 0", errors={"limit": "out of range"}
        )
    from_, to = _paging("inbox", after, before, offset)
    mine = queues(svc, rt, actor, readable_procedures(svc, rt, actor))
    if not mine:
        return CasePage([], 0, limit, offset)
    start, here = ("after", from_) if from_ else ("before", to) if to else (None, None)
    page, counted = _inbox_page(len(mine), start), _inbox_count(len(mine))
    params: dict[str, Any] = {"co": rt.id}
    for i, (kind, ref, procedure) in enumerate(mine):
        params.update({f"k{i}": kind, f"r{i}": ref, f"p{i}": procedure})
    # one more than a page: whether there is one after it (one before it, backwards)
    want = limit + 1
    paging: dict[str, Any] = {"n": offset + want, "limit": want, "offset": offset}
    if here is not None:
        paging.update(at_due=here[0], at_id=here[1])
    with svc.db.read() as conn:
        heads, more = _trim(conn.execute(page, params | paging).all(), limit, to is not None)
        if to is not None and not more:
            return inbox(svc, actor, limit=limit)
        ids = [r.case_id for r in heads]
        n = conn.execute(counted, {**params, "cap": COUNT_CAP + 1}).scalar_one()
        total, exact = min(n, COUNT_CAP), n <= COUNT_CAP
        rows = {r.id: r for r in conn.execute(_CASES_BY_ID, {"co": rt.id, "ids": ids}).all()}
        items = [
            svc._view(rt, rows[i], svc.procedure_for_version(conn, rows[i].procedure_version_id))
            for i in ids
            if i in rows
        ]
    last = heads[-1] if heads and (more or to) else None
    first = heads[0] if heads and (here or offset) else None
    return CasePage(
        items,
        total,
        limit,
        offset,
        total_exact=exact,
        next=None if last is None else _cursor("inbox", last.due_at, last.case_id),
        previous=None if first is None else _cursor("inbox", first.due_at, first.case_id),
    )


def linked_cases(svc: CaseService, company: str, case_id: int) -> list[dict[str, Any]]:
    """The cases linked to a case, either way: ``direction`` ``to`` (this case opened it,
    e.g. complaint → 8D) or ``from``; with the link's name, the rule that made it, and the
    other case's id, number, procedure and status."""
    rt = svc.company(company)
    link, c = t.case_link, t.case
    out: list[dict[str, Any]] = []
    with svc.db.read() as conn:
        for direction, mine, other in (
            ("to", link.c.from_case_id, link.c.to_case_id),
            ("from", link.c.to_case_id, link.c.from_case_id),
        ):
            rows = conn.execute(
                select(link.c.link, link.c.rule_id, c.c.id, c.c.number, c.c.procedure, c.c.status)
                .join(c, c.c.id == other)
                .where(link.c.company_id == rt.id, mine == case_id, c.c.company_id == rt.id)
                .order_by(link.c.id)
            ).all()
            out += [{"direction": direction, **r._mapping} for r in rows]
    return out


def workload(svc: CaseService, actor: Actor, now: dt.datetime) -> list[dict[str, Any]]:
    """Who has what: per person (and per role or department queue) the open cases assigned
    to them in the procedures ``actor`` may read, and how many of those are past due."""
    rt = svc.company(actor.company)
    procs = readable_procedures(svc, rt, actor)
    if not procs:
        return []
    a = t.case_assignee
    query = (
        select(
            a.c.kind,
            a.c.ref,
            func.count().label("open"),
            func.count().filter(a.c.due_at < now).label("overdue"),
        )
        .where(a.c.company_id == rt.id, a.c.procedure.in_(procs))
        .group_by(a.c.kind, a.c.ref)
        .order_by(a.c.kind, func.count().desc(), a.c.ref)
    )
    with svc.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(query).all()]
