"""Schedules: cases opened on a calendar, and per-case recurring effects.

A pack's ``schedules:`` entry either

* has no ``from:`` — a **company schedule**: at each occurrence (``every: month``,
  ``on: 1``, ``at: "09:00"`` in the company's time zone) the worker opens a case of the
  pack, as actor ``system``, with the ``open: {fields: ...}`` values; or
* has ``from:`` — a **per-case schedule**, counted from an event of the case (e.g.
  delivery), in phases (``every: [{every: month, count: 12}, {every: quarter}]``: monthly in
  the first year, then quarterly), applying ``then:`` effects to the case until it closes.

Each occurrence is one durable timer (kind ``schedule``) whose idempotency key names the
schedule and the occurrence instant, so an occurrence fires once however many workers
run; firing one schedules the next. At most one occurrence per schedule (and case) is
pending at a time. Company overrides (``procedures: <pack>: schedules: {name: {enabled,
on, at}}``) change the day and time or switch a schedule off.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dateutil import rrule
from dateutil.relativedelta import relativedelta
from sqlalchemy import Connection, select

from core.cases import timers
from core.spec.definitions import ScheduleDef
from core.storage import schema as t

if TYPE_CHECKING:
    from core.cases.service import CaseService, CompanyRuntime
    from core.spec.procedures import CompiledProcedure

KIND = "schedule"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
STEP = {
    "day": relativedelta(days=1),
    "week": relativedelta(weeks=1),
    "month": relativedelta(months=1),
    "quarter": relativedelta(months=3),
    "year": relativedelta(years=1),
}


class ScheduleError(ValueError):
    pass


def _effective(sdef: ScheduleDef, override: Any) -> tuple[Any, str, bool]:
    on, at, enabled = sdef.on, sdef.at, True
    if override is not None:
        enabled = override.enabled
        on = override.on if override.on is not None else on
        at = override.at or at
    return on, at, enabled


def check_on(every: str, on: Any) -> str | None:
    """Why ``on`` does not fit ``every`` (None when it does)."""
    if on is None:
        return None
    if every in ("month", "quarter"):
        if isinstance(on, bool) or not isinstance(on, int) or not 1 <= on <= 31:
            return f"on: for every {every} is a day of the month, 1 to 31 (not {on!r})"
    elif every == "week":
        if not (isinstance(on, str) and on.lower()[:3] in WEEKDAYS):
            return f"on: for every week is a weekday, mon to sun (not {on!r})"
    elif every == "year":
        try:
            dt.date(2000, *map(int, str(on).split("-")))
        except (TypeError, ValueError):
            return f'on: for every year is a month and day, e.g. "12-01" (not {on!r})'
    elif every == "day":
        return "on: makes no sense for every day"
    return None


def company_occurrences(
    sdef: ScheduleDef, override: Any, tz: dt.tzinfo, after: dt.datetime
) -> Iterator[dt.datetime]:
    """Occurrences of a company schedule strictly after ``after``, in local time."""
    on, at, _ = _effective(sdef, override)
    hour, minute = map(int, at.split(":"))
    local = after.astimezone(tz)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None) - dt.timedelta(
        days=400
    )
    every = sdef.every
    assert isinstance(every, str)
    kw: dict[str, Any] = {"dtstart": start, "byhour": hour, "byminute": minute, "bysecond": 0}
    if every == "day":
        rule = rrule.rrule(rrule.DAILY, **kw)
    elif every == "week":
        day = WEEKDAYS.index(str(on or "mon").lower()[:3])
        rule = rrule.rrule(rrule.WEEKLY, byweekday=day, **kw)
    elif every in ("month", "quarter"):
        months = None if every == "month" else (1, 4, 7, 10)
        # a day the month lacks (31) falls on its last day
        day = int(on or 1)
        rule = rrule.rrule(
            rrule.MONTHLY,
            bymonth=months,
            bymonthday=(day, -1) if day > 28 else day,
            bysetpos=1 if day > 28 else None,
            **kw,
        )
    else:
        month, day = map(int, str(on).split("-")) if on else (1, 1)
        rule = rrule.rrule(rrule.YEARLY, bymonth=month, bymonthday=day, **kw)
    for naive in rule:
        moment = naive.replace(tzinfo=tz)
        if moment > after:
            yield moment


def case_occurrences(
    sdef: ScheduleDef, override: Any, tz: dt.tzinfo, origin: dt.datetime
) -> Iterator[dt.datetime]:
    """Occurrences of a per-case schedule counted from ``origin`` (at the schedule's time)."""
    _, at, _ = _effective(sdef, override)
    hour, minute = map(int, at.split(":"))
    phases = sdef.every if isinstance(sdef.every, list) else None
    base = origin.astimezone(tz).replace(hour=hour, minute=minute, second=0, microsecond=0)
    offset = relativedelta()
    if phases is None:
        assert isinstance(sdef.every, str)
        while True:
            offset += STEP[sdef.every]
            yield (base.replace(tzinfo=None) + offset).replace(tzinfo=tz)
    for phase in phases:
        n = 0
        while phase.count is None or n < phase.count:
            n += 1
            offset += STEP[phase.every]
            yield (base.replace(tzinfo=None) + offset).replace(tzinfo=tz)


def _key(company_id: int, pack: str, name: str, case_id: int | None, at: dt.datetime) -> str:
    scope = f"case{case_id}" if case_id is not None else f"co{company_id}"
    return f"schedule:{scope}:{pack}:{name}:{at.astimezone(dt.UTC):%Y%m%dT%H%M}"


def _waiting(conn: Connection, prefix: str) -> bool:
    return (
        conn.execute(
            select(t.timer.c.id)
            .where(
                t.timer.c.idempotency_key.like(prefix + "%"),
                t.timer.c.status.in_((timers.PENDING, timers.CLAIMED)),
            )
            .limit(1)
        ).first()
        is not None
    )


def _override(rt: CompanyRuntime, pack: str, name: str) -> Any:
    settings = rt.definition.procedures.get(pack)
    return settings.schedules.get(name) if settings else None


def seed_company(svc: CaseService, conn: Connection, rt: CompanyRuntime, now: dt.datetime) -> int:
    """Make sure each enabled company schedule has its next occurrence pending. Returns how many added."""
    import zoneinfo

    tz = zoneinfo.ZoneInfo(rt.definition.timezone)
    added = 0
    for key, proc in rt.procedures.items():
        for name, sdef in proc.pack.schedules.items():
            if sdef.from_ is not None:
                continue
            override = _override(rt, key, name)
            prefix = f"schedule:co{rt.id}:{key}:{name}:"
            if not _effective(sdef, override)[2]:
                conn.execute(
                    t.timer.update()
                    .where(
                        t.timer.c.idempotency_key.like(prefix + "%"),
                        t.timer.c.status == timers.PENDING,
                    )
                    .values(status=timers.CANCELLED)
                )
                continue
            if _waiting(conn, prefix):
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
    svc: CaseService,
    conn: Connection,
    rt: CompanyRuntime,
    proc: CompiledProcedure,
    case_id: int,
    journal: list[dict[str, Any]],
    closed: bool,
    now: dt.datetime,
) -> None:
    """Per-case schedules: the next occurrence pending while the case is open."""
    from core.cases.deadlines import _event_at, timeline

    schedules = {n: s for n, s in proc.pack.schedules.items() if s.from_ is not None}
    if not schedules:
        return
    if closed:
        timers.cancel(conn, case_id=case_id, kind=KIND)
        return
    cal = svc.calendar(rt.key)
    moments = timeline(journal)
    for name, sdef in schedules.items():
        override = _override(rt, proc.key, name)
        prefix = f"schedule:case{case_id}:{proc.key}:{name}:"
        if not _effective(sdef, override)[2] or _waiting(conn, prefix):
            continue
        origin, _ = _event_at(sdef.from_, moments, None, cal)
        if origin is None:
            continue
        fired = conn.execute(
            select(t.timer.c.due_at)
            .where(t.timer.c.idempotency_key.like(prefix + "%"), t.timer.c.status == timers.DONE)
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


@timers.handler(KIND)
def _fire(svc: CaseService, conn: Connection, due: timers.DueTimer) -> None:
    from core.cases.service import Actor
    from core.spec.loading import coerce_fields

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
        effects = []
        for eff in sdef.then:
            ((etype_name, args),) = eff.items()
            etype = svc.catalog.effects[etype_name]
            effects.append((etype, etype.args.model_validate(args)))
        svc.system_change(
            conn,
            rt.id,
            row.id,
            {
                "kind": "schedule_fired",
                "data": {"schedule": name, "occurrence": due.payload.get("occurrence")},
            },
            effects,
            f"schedule.{name}",
        )
        return  # system_change refreshes the case, which schedules the next occurrence
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
    svc._open_in(conn, rt, proc, Actor("system", rt.key, system=True), values, depth=0)
    seed_company(svc, conn, rt, due.due_at)
