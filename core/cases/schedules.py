"""Schedules: cases opened on a calendar, and per-case recurring effects.

A pack's ``schedules:`` entry either

* has no ``from:`` — a **company schedule**: at each occurrence (``every: month``,
  ``on: 1``, ``at: "09:00"`` in the company's time zone) the worker opens a case of the
  pack, as actor ``system``, with the ``open: {fields: ...}`` values; or
* has ``from:`` — a **per-case schedule**, counted from an event of the case (e.g.
  delivery), in phases (``every: [{every: month, count: 12}, {every: quarter}]``: monthly in
  the first year, then quarterly), applying ``then:`` effects to the case until it closes;
  an occurrence while the case is not at a step of ``while: {steps}`` or while its
  ``while:``/``when:`` condition is false changes nothing (``schedule_skipped``) and the
  next one is planned.

Each occurrence is one durable timer (kind ``schedule``) whose idempotency key names the
schedule and the occurrence instant, so an occurrence fires once however many workers
run; firing one schedules the next. At most one occurrence per schedule (and case) is
pending at a time. Company overrides (``procedures: <pack>: schedules: {name: {enabled,
on, at}}``) change the day and time or switch a schedule off.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from core.cases import journal as chain
from core.cases import timers
from core.cases.deadlines import _event_at, timeline
from core.rules.reference import holds
from core.spec.effects import parse_effects
from core.spec.forms import coerce_fields
from core.storage import schema as t
from core.time.recurrence import case_occurrences, company_occurrences, effective

if TYPE_CHECKING:  # types only: the commit pipeline and the service import this module (a cycle)
    from core.cases.commit import CompanyRuntime
    from core.cases.service import CaseService
    from core.spec.procedures import CompiledProcedure
    from core.spec.slas import ScheduleGate
    from core.time.calendars import WorkingCalendar

KIND = "schedule"


def _key(company_id: int, pack: str, name: str, case_id: int | None, at: dt.datetime) -> str:
    scope = f"case{case_id}" if case_id is not None else f"co{company_id}"
    return f"schedule:{scope}:{pack}:{name}:{at.astimezone(dt.UTC):%Y%m%dT%H%M}"


def _of(case_id: int | None, prefix: str) -> list[Any]:
    """The schedule timers of one case (or of the company, ``None``) under ``prefix``: the
    case and kind narrow the search through ix_timer_case before the key is compared."""
    c = t.timer.c
    owner = c.case_id.is_(None) if case_id is None else c.case_id == case_id
    return [owner, c.kind == KIND, c.idempotency_key.like(prefix + "%")]


def _waiting(conn: Connection, prefix: str, case_id: int | None) -> bool:
    return (
        conn.execute(
            select(t.timer.c.id)
            .where(*_of(case_id, prefix), t.timer.c.status.in_((timers.PENDING, timers.CLAIMED)))
            .limit(1)
        ).first()
        is not None
    )


def _override(rt: CompanyRuntime, pack: str, name: str) -> Any:
    settings = rt.definition.procedures.get(pack)
    return settings.schedules.get(name) if settings else None


def seed_company(svc: CaseService, conn: Connection, rt: CompanyRuntime, now: dt.datetime) -> int:
    """Make sure each enabled company schedule has its next occurrence pending.

    Returns how many occurrences were added.
    """
    tz = zoneinfo.ZoneInfo(rt.definition.timezone)
    added = 0
    for key, proc in rt.procedures.items():
        for name, sdef in proc.pack.schedules.items():
            if sdef.from_ is not None:
                continue
            override = _override(rt, key, name)
            prefix = f"schedule:co{rt.id}:{key}:{name}:"
            if not effective(sdef, override)[2]:
                timers.cancel(conn, where=_of(None, prefix))
                continue
            if _waiting(conn, prefix, None):
                continue
            at = next(company_occurrences(sdef, override, tz, now))
            timers.schedule(
                conn,
                company_id=rt.id,
                case_id=None,
                kind=KIND,
                due_at=at,
                key=_key(rt.id, key, name, None, at),
                payload={"procedure": key, "schedule": name, "occurrence": at.isoformat()},
            )
            added += 1
    return added


def refresh_case(
    conn: Connection,
    rt: CompanyRuntime,
    proc: CompiledProcedure,
    case_id: int,
    journal: Sequence[Mapping[str, Any]],
    closed: bool,
    now: dt.datetime,
    cal: WorkingCalendar,
) -> None:
    """Per-case schedules: the next occurrence pending while the case is open."""
    schedules = {n: s for n, s in proc.pack.schedules.items() if s.from_ is not None}
    if not schedules:
        return
    if closed:
        timers.cancel(conn, case_id=case_id, kind=KIND)
        return
    moments = timeline(journal)
    for name, sdef in schedules.items():
        override = _override(rt, proc.key, name)
        prefix = f"schedule:case{case_id}:{proc.key}:{name}:"
        if not effective(sdef, override)[2] or _waiting(conn, prefix, case_id):
            continue
        origin, _ = _event_at(sdef.from_, moments, None, cal)
        if origin is None:
            continue
        fired = conn.execute(
            select(t.timer.c.due_at)
            .where(*_of(case_id, prefix), t.timer.c.status == timers.DONE)
            .order_by(t.timer.c.due_at.desc())
            .limit(1)
        ).scalar()
        floor = max(now, fired) if fired else now
        at = next((x for x in case_occurrences(sdef, override, cal.tz, origin) if x > floor), None)
        if at is None:
            continue
        timers.schedule(
            conn,
            company_id=rt.id,
            case_id=case_id,
            kind=KIND,
            due_at=at,
            key=_key(rt.id, proc.key, name, case_id, at),
            payload={"procedure": proc.key, "schedule": name, "occurrence": at.isoformat()},
        )


def _fill(value: Any, moment: dt.datetime) -> Any:
    """Placeholders in ``open: fields`` text: {date} {year} {month} {previous_month}."""
    if not isinstance(value, str) or "{" not in value:
        return value
    first = moment.replace(day=1)
    prev = first - dt.timedelta(days=1)
    return (
        value.replace("{date}", moment.date().isoformat())
        .replace("{year}", f"{moment.year:04d}")
        .replace("{month}", f"{moment.year:04d}-{moment.month:02d}")
        .replace("{previous_month}", f"{prev.year:04d}-{prev.month:02d}")
    )


def _open_gate(
    svc: CaseService, rt: CompanyRuntime, proc: CompiledProcedure, row: Any, gate: ScheduleGate
) -> bool:
    """Whether a per-case schedule's ``while:`` and ``when:`` let this occurrence act."""
    if gate.while_steps and row.step not in gate.while_steps:
        return False
    facts = proc.facts(
        row.fields, event="timer", step=row.step, now=svc.clock.now(), calendar=svc.calendar(rt.key)
    )
    return all(cond is None or holds(cond, facts) for cond in (gate.while_cond, gate.when))


@timers.handler(KIND)
def _fire(svc: CaseService, conn: Connection, due: timers.DueTimer) -> None:
    rt = next((r for r in svc.companies.values() if r.id == due.company_id), None)
    if rt is None:
        return
    proc = rt.procedures.get(due.payload["procedure"])
    name = due.payload["schedule"]
    if due.case_id is not None:
        row = conn.execute(select(t.case).where(t.case.c.id == due.case_id)).first()
        if row is None or row.status != "open":
            return
        case_proc = svc.procedure_for_version(conn, row.procedure_version_id)
        sdef = case_proc.pack.schedules.get(name)
        if sdef is None:
            return
        data = {"schedule": name, "occurrence": due.payload.get("occurrence")}
        gate = case_proc.schedule_gates.get(name)
        if gate is not None and not _open_gate(svc, rt, case_proc, row, gate):
            # nothing to do this time: journal it and plan the next occurrence
            svc.pipeline(conn, rt).note(
                row.id, case_proc, {"kind": "schedule_skipped", "data": {**data, "step": row.step}}
            )
            refresh_case(
                conn,
                rt,
                case_proc,
                row.id,
                chain.case_history(conn, rt.id, row.id),
                False,
                svc.clock.now(),
                svc.calendar(rt.key),
            )
            return
        effects = parse_effects(sdef.then, svc.catalog.effects)
        svc.pipeline(conn, rt).system(
            row.id, {"kind": "schedule_fired", "data": data}, effects, f"schedule.{name}"
        )
        return  # the pipeline refreshes the case, which schedules the next occurrence
    if proc is None:
        return
    sdef = proc.pack.schedules.get(name)
    if sdef is None:
        return
    local = due.due_at.astimezone(svc.calendar(rt.key).tz)
    raw = {k: _fill(v, local) for k, v in ((sdef.open or {}).get("fields") or {}).items()}
    values, errors = coerce_fields(proc, raw, list(proc.pack.fields), [])
    if errors:
        raise ValueError(f"schedule {name} of {proc.key}: its open fields do not fit: {errors}")
    svc.pipeline(conn, rt).open_system(proc, values)
    seed_company(svc, conn, rt, due.due_at)
