"""Deadlines (SLAs) and pack timers, derived from a case's journal.

A pack declares deadlines under ``slas:`` (between two moments of the case) and on steps
(``sla:``: from entering the step to leaving it), and one-off timers under ``timers:``.
Nothing about a deadline is stored as state: :func:`compute` replays the case's journal
(opened, actions, moves, field changes, closing) into a timeline and derives, for each
SLA, when its clock started, which target applies (a duration, the first matching row of
a target table, a date staff promised, an extension), the pauses, the due and warning
instants on the company's working calendar, and its state. Change a pause, the fields a
target table reads, or the calendar, and the next computation is consistent with it.

After every change of a case (in the same transaction) :func:`refresh` recomputes and
(re)schedules the durable timers ``sla.warn`` / ``sla.breach`` / ``pack.timer``; their
handlers (registered here) recompute again when they fire and act only if the deadline is
still warned/breached, then apply the SLA's ``on_warning`` / ``on_breach`` effects (or a
timer's ``then``) as a system change of the case.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from core.cases import journal as chain
from core.cases import timers
from core.rules.reference import holds
from core.spec.definitions import EventRef, PromisedTarget
from core.spec.slas import CompiledSla, CompiledTimer
from core.storage import schema as t
from core.time.calendars import WorkingCalendar
from core.time.durations import (
    CalendarSpan,
    DayEnd,
    Duration,
    Elapsed,
    Workdays,
    WorkTime,
    subtract,
)

if TYPE_CHECKING:  # types only: the commit pipeline and the service import this module (a cycle)
    from sqlalchemy import Connection

    from core.cases.service import CaseService
    from core.spec.procedures import CompiledProcedure

_ZERO = dt.timedelta(0)


# -- the timeline ----------------------------------------------------------------------


@dataclass
class Moment:
    """The case as it was right after one committed change."""

    at: dt.datetime
    step: str
    closed: bool
    fields: dict[str, Any]
    actions: tuple[str, ...] = ()  # actions done in this change
    entered: str | None = None  # the step entered by this change, if it changed


#: journal entries that begin a change of the case (the others belong to the change before)
CHANGE_KINDS = frozenset(
    {"opened", "action", "sla_warning", "sla_breached", "timer_fired", "schedule_fired"}
)


def timeline(journal: Sequence[Mapping[str, Any]]) -> list[Moment]:
    """Replay journal entries (oldest first) into the case's state after each change."""
    out: list[Moment] = []
    step, closed = "", False
    fields: dict[str, Any] = {}
    before = ""
    cur: Moment | None = None
    for e in journal:
        kind, data = e["kind"], e.get("data") or {}
        if cur is None or kind in CHANGE_KINDS or e["at"] != cur.at:
            before = step
            # the new moment's own copy, changed by its entries: the earlier moments keep
            # theirs (one copy per change, not one per entry)
            fields = dict(fields)
            cur = Moment(e["at"], step, closed, fields)
            out.append(cur)
        if kind == "opened":
            fields.clear()
            fields.update(data.get("fields") or {})
            step = data.get("step", step)
        elif kind == "action":
            fields.update(data.get("fields") or {})
            step = data.get("to_step", step)
            cur.actions = (*cur.actions, e.get("action") or "")
        elif kind == "moved":
            step = data.get("to_step", step)
        elif kind == "field_set":
            fields[data["field"]] = data.get("new")
        elif kind == "closed":
            closed = True
        cur.step, cur.closed = step, closed
        cur.entered = step if step != before else None
    return out


# -- computing deadlines -----------------------------------------------------------------


@dataclass
class Deadline:
    """One SLA of one case, explained."""

    id: str
    label: Any
    source: str | None
    state: str  # pending | running | paused | warned | met | breached
    started_at: dt.datetime | None = None
    start_reason: str = ""
    target: str | None = None
    target_reason: str = ""
    due_at: dt.datetime | None = None
    warn_at: dt.datetime | None = None
    stopped_at: dt.datetime | None = None
    stop_reason: str = ""
    pauses: list[tuple[dt.datetime, dt.datetime | None]] = field(default_factory=list)
    counted: dt.timedelta = _ZERO  # time counted so far, in the target's measure
    measure: str = "elapsed"  # "elapsed" or "working time"
    extension: dict[str, Any] | None = None
    skipped_days: list[str] = field(default_factory=list)
    counted_days: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self, locale: str = "zh-CN", tz: dt.tzinfo = dt.UTC) -> dict[str, Any]:
        """The deadline as JSON values; every instant ISO 8601 in ``tz`` (the company's
        zone), with its UTC offset (``Z`` when it is zero)."""

        def iso(x: dt.datetime | str | None) -> str | None:
            if not x:
                return None
            moment = dt.datetime.fromisoformat(x) if isinstance(x, str) else x
            text = moment.astimezone(tz).isoformat()
            return text[:-6] + "Z" if text.endswith("+00:00") else text

        return {
            "id": self.id,
            "label": self.label.text(locale) if self.label else self.id,
            "source": self.source,
            "state": self.state,
            "started_at": iso(self.started_at),
            "start_reason": self.start_reason,
            "target": self.target,
            "target_reason": self.target_reason,
            "due_at": iso(self.due_at),
            "warn_at": iso(self.warn_at),
            "stopped_at": iso(self.stopped_at),
            "stop_reason": self.stop_reason,
            "pauses": [{"from": iso(a), "to": iso(b)} for a, b in self.pauses],
            "counted_seconds": int(self.counted.total_seconds()),
            "measure": self.measure,
            "extension": (
                {**self.extension, "at": iso(self.extension.get("at"))}
                if self.extension
                else self.extension
            ),
            "skipped_days": self.skipped_days,
            "counted_days": self.counted_days,
            "warnings": self.warnings,
        }


def _parse_instant(value: Any, cal: WorkingCalendar) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            return dt.datetime.combine(day, dt.time(), tzinfo=cal.tz)
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=cal.tz)


def _event_at(
    ev: Any,
    moments: Sequence[Moment],
    after: dt.datetime | None,
    cal: WorkingCalendar,
    first: bool = True,
) -> tuple[dt.datetime | None, str]:
    """When ``ev`` happened (the first time at or after ``after``; the last time if not first)."""
    if _is(ev, "opened"):
        return (moments[0].at, "the case was opened") if moments else (None, "")
    if _is(ev, "closed"):
        closing = next((m for m in moments if m.closed), None)
        if closing is None or (after is not None and closing.at < after):
            return None, ""
        return closing.at, "the case was closed"
    if not isinstance(ev, EventRef):
        return None, ""
    if ev.field is not None:
        at = _parse_instant(moments[-1].fields.get(ev.field) if moments else None, cal)
        return (at, f"field '{ev.field}'") if at else (None, f"field '{ev.field}' is empty")
    action = ev.action
    steps = {ev.step} if ev.step else set(ev.steps or ())
    # the first (or last) moment at or after ``after`` that did the action or entered one
    # of the steps; its reason is worded for that moment only
    for m in moments if first else reversed(moments):
        if after is not None and m.at < after:
            continue
        if action and action in m.actions:
            return m.at, f"action '{action}'"
        if steps and m.entered in steps:
            return m.at, f"entered step '{m.entered}'"
    return None, ""


def _is(ev: Any, name: str) -> bool:
    """Whether the event ``ev`` is ``"opened"`` / ``"closed"`` (comparing an EventRef, a
    pydantic model, with a text costs a call into pydantic)."""
    return ev.__class__ is str and ev == name


def _measure(d: Duration) -> str:
    return "working time" if d.__class__ in _WORKING else "elapsed"


_WORKING = (WorkTime, Workdays)


@functools.lru_cache(maxsize=256)
def _duration(text: str) -> Duration:
    """A warning's duration text parsed (once: durations are frozen values)."""
    return Duration.parse(text)


@functools.lru_cache(maxsize=256)
def _text(d: Duration) -> str:
    return str(d)


class _Meter:
    """Counts time in one measure (elapsed or working time) on a calendar."""

    def __init__(self, cal: WorkingCalendar, measure: str) -> None:
        self.cal, self.work = cal, measure == "working time"

    # Elapsed time is counted in UTC: Python subtracts and adds two instants of one zone
    # on their wall clocks, which is an hour off across a change of daylight saving time

    def between(self, a: dt.datetime, b: dt.datetime) -> dt.timedelta:
        if self.work:
            return self.cal.work_time_between(a, b) if b > a else _ZERO
        span = b.astimezone(dt.UTC) - a.astimezone(dt.UTC)
        return span if span > _ZERO else _ZERO

    def add(self, a: dt.datetime, amount: dt.timedelta) -> dt.datetime:
        if self.work:
            return self.cal.add_work_time(a, amount)
        return (a.astimezone(dt.UTC) + amount).astimezone(a.tzinfo)


def _walk(
    meter: _Meter,
    start: dt.datetime,
    pauses: Sequence[tuple[dt.datetime, dt.datetime | None]],
    budget: dt.timedelta,
) -> dt.datetime | None:
    """Where ``budget`` of active time since ``start`` runs out; None while paused forever."""
    cursor, left = start, budget
    for p0, p1 in pauses:
        if p0 > cursor:
            avail = meter.between(cursor, p0)
            if avail >= left:
                return meter.add(cursor, left)
            left -= avail
        if p1 is None:
            return None
        cursor = max(cursor, p1)
    return meter.add(cursor, left)


def _unpaused(
    target: Duration, start: dt.datetime, cal: WorkingCalendar, warning: str | None
) -> tuple[dt.datetime, dt.timedelta, dt.timedelta | None, dt.datetime | None]:
    """A target's due instant from ``start`` on ``cal`` with no pause, the time it allows
    (in its measure), the warning's share of that time, and the warning instant with no
    pause. A deadline keeps its start while its case moves on, so each change of the case
    asks for the same values again: the calendar remembers them."""

    def compute() -> tuple[dt.datetime, dt.timedelta, dt.timedelta | None, dt.datetime | None]:
        meter = _Meter(cal, _measure(target))
        nominal = target.add(start, cal)
        budget = meter.between(start, nominal)
        wb = _warning_budget(warning, budget, cal)
        return nominal, budget, wb, None if wb is None else meter.add(start, wb)

    return cal.remember(("sla-target", target, start, start.tzinfo, start.fold, warning), compute)


def _daily(cal: WorkingCalendar) -> dt.timedelta:
    return sum((dt.timedelta(minutes=b - a) for a, b in cal.definition.periods), _ZERO)


def _warn_before(
    warning: str, start: dt.datetime, due: dt.datetime, cal: WorkingCalendar
) -> dt.datetime:
    """When the warning of an SLA due at ``due`` comes, for a due time not computed from a
    duration (a promised date) or a warning in calendar days: a share of the time from
    ``start``, or the warning's duration before ``due`` — elapsed and calendar time
    counted back from it, working time counted in working time — never before ``start``."""
    if warning.endswith("%"):
        utc = start.astimezone(dt.UTC)
        share = (due.astimezone(dt.UTC) - utc) * (float(warning[:-1]) / 100)
        return (utc + share).astimezone(start.tzinfo)
    w = _duration(warning)
    if isinstance(w, Elapsed | CalendarSpan):
        return max(start, subtract(w, due, cal))
    meter = _Meter(cal, _measure(w))
    left = _warning_budget(warning, meter.between(start, due), cal)
    return meter.add(start, left) if left is not None else start


def _warning_budget(
    warning: str | None, budget: dt.timedelta, cal: WorkingCalendar
) -> dt.timedelta | None:
    if not warning:
        return None
    if warning.endswith("%"):
        return budget * (float(warning[:-1]) / 100)
    w = _duration(warning)
    if isinstance(w, Elapsed):
        amount = w.delta
    elif isinstance(w, WorkTime):
        amount = w.delta
    elif isinstance(w, Workdays):
        amount = _daily(cal) * w.count
    else:
        return None
    return budget - amount if amount < budget else _ZERO


def compute(
    slas: Mapping[str, CompiledSla],
    journal: Sequence[Mapping[str, Any]],
    cal: WorkingCalendar,
    now: dt.datetime,
    facts_of: Any,
    explain: bool = True,
) -> list[Deadline]:
    """Every SLA of the case at ``now``. ``facts_of(fields, step)`` gives the rule facts;
    ``explain=False`` leaves out the day-by-day explanation and the time counted so far
    (scheduling needs neither)."""
    moments = timeline(journal)
    out = []
    for sla in slas.values():
        if sla.when is not None and not (
            moments and holds(sla.when, facts_of(moments[-1].fields, moments[-1].step))
        ):
            continue  # ``when:`` false: this case has no such deadline (no phantom one)
        out.append(_one(sla, moments, cal, now, facts_of, explain))
    return out


@functools.lru_cache(maxsize=1024)
def _step_ref(step: str) -> EventRef:
    """The entry into ``step`` (built once: a model is costly to validate per action)."""
    return EventRef(step=step)


@functools.lru_cache(maxsize=1024)
def _action_ref(action: str) -> EventRef:
    return EventRef(action=action)


def _one(
    sla: CompiledSla,
    moments: Sequence[Moment],
    cal: WorkingCalendar,
    now: dt.datetime,
    facts_of: Any,
    explain: bool = True,
) -> Deadline:
    d = Deadline(sla.id, sla.label, sla.source, "pending")
    if not moments:
        return d
    if sla.step is not None:  # the latest visit of the step
        start, why = _event_at(_step_ref(sla.step), moments, None, cal, first=False)
        if moments[0].step == sla.step and start is None:
            start, why = moments[0].at, f"the case started at step '{sla.step}'"
    else:
        start, why = _event_at(sla.start, moments, None, cal)
    if start is None:
        d.start_reason = why or "not started yet"
        return d
    d.started_at, d.start_reason = start, why
    if sla.step is not None:
        # the moment of the latest entry into the step, then the first change that left it
        first = next(
            (
                i
                for i in range(len(moments) - 1, -1, -1)
                if moments[i].at == start and moments[i].step == sla.step
            ),
            0,
        )
        stop = next((m for m in moments[first + 1 :] if m.step != sla.step or m.closed), None)
        if stop is not None:
            d.stopped_at = stop.at
            d.stop_reason = "the case was closed" if stop.closed else f"left for step '{stop.step}'"
    else:
        s_at, s_why = _event_at(sla.stop, moments, start, cal)
        if s_at is None and _is(sla.stop, "closed") and moments[-1].closed:
            s_at, s_why = moments[-1].at, "the case was closed"
        if s_at is None and moments[-1].closed:
            closed_at = next(m.at for m in moments if m.closed)
            if closed_at >= start:
                s_at, s_why = closed_at, "the case was closed"
        d.stopped_at, d.stop_reason = s_at, s_why
    end = d.stopped_at or now
    # the state at each moment decides the pauses
    paused_from: dt.datetime | None = None
    for m in moments:
        if m.at > end:
            break
        paused = m.step in sla.pause_steps or (
            sla.pause_cond is not None and holds(sla.pause_cond, facts_of(m.fields, m.step))
        )
        at = max(m.at, start)
        if paused and paused_from is None:
            paused_from = at
        elif not paused and paused_from is not None:
            if at > paused_from:
                d.pauses.append((paused_from, at))
            paused_from = None
    if paused_from is not None:
        d.pauses.append((paused_from, None if d.stopped_at is None else d.stopped_at))
    # the target
    current = moments[-1]
    target: Duration | None = None
    ext = sla.extension
    ext_at = None
    if ext is not None:
        ext_at, _ = _event_at(_action_ref(ext.action), moments, start, cal)
    if ext is not None and ext_at is not None and (d.stopped_at is None or ext_at <= d.stopped_at):
        target = ext.target
        d.target_reason = f"extended by action '{ext.action}'"
        d.extension = {
            "at": ext_at.astimezone(dt.UTC).isoformat(),
            "target": _text(ext.target),
            "reason": current.fields.get(ext.reason),
        }
    elif sla.promised is not None:
        if not _promised(d, sla.promised, current.fields, start, cal):
            return d
    else:
        facts = facts_of(current.fields, current.step)
        row: Duration | PromisedTarget | None = None
        for i, (cond, dur) in enumerate(sla.targets):
            if cond is None or holds(cond, facts):
                row = dur
                if len(sla.targets) > 1:
                    d.target_reason = f"row {i + 1} of the target table"
                break
        if row is None:
            d.target_reason = "no row of the target table applies"
            d.state = "pending"
            return d
        if isinstance(row, PromisedTarget):
            reason = d.target_reason
            if not _promised(d, row, current.fields, start, cal):
                return d
            d.target_reason = f"{reason}: {d.target_reason}" if reason else d.target_reason
        else:
            target = row
    if target is not None:
        d.target = _text(target)
        d.measure = _measure(target)
        meter = _Meter(cal, d.measure)
        nominal, budget, wb, warn_at = _unpaused(target, start, cal, sla.warning)
        active_pauses = [(a, b) for a, b in d.pauses if b is None or b > a]
        d.due_at = nominal if not active_pauses else _walk(meter, start, active_pauses, budget)
        if wb is not None:
            d.warn_at = _walk(meter, start, active_pauses, wb) if active_pauses else warn_at
        elif sla.warning and d.due_at is not None:  # calendar time ("3 days"): before the due
            d.warn_at = _warn_before(sla.warning, start, d.due_at, cal)
        if isinstance(target, CalendarSpan | DayEnd):
            d.measure = "elapsed"
        if explain:  # (scheduling needs none: it grows with the deadline's age)
            d.counted = meter.between(start, end) - sum(
                (meter.between(a, min(b or end, end)) for a, b in active_pauses), _ZERO
            )
    elif d.due_at is not None and sla.warning:  # a promised date
        d.warn_at = _warn_before(sla.warning, start, d.due_at, cal)
        d.counted = end - start
    # state
    if d.stopped_at is not None:
        # the due instant itself is late: the breach timer fires at it (now >= due)
        d.state = "met" if d.due_at is None or d.stopped_at < d.due_at else "breached"
    elif d.pauses and d.pauses[-1][1] is None:
        d.state = "paused"
    elif d.due_at is not None and now >= d.due_at:
        d.state = "breached"
    elif d.warn_at is not None and now >= d.warn_at:
        d.state = "warned"
    else:
        d.state = "running"
    if explain and d.due_at is not None and d.due_at > start:
        expl = cal.explain(start, d.due_at)
        d.skipped_days = [str(x) for x in expl.skipped]
        d.counted_days = [str(x) for x in expl.makeup_workdays + expl.company_workdays]
        d.warnings = list(expl.warnings)
    return d


def explain_lines(d: Deadline, tz: Any) -> list[str]:
    """A deadline in words, for ``kefu deadlines`` and logs."""

    def t(x: dt.datetime | None) -> str:
        return x.astimezone(tz).strftime("%Y-%m-%d %H:%M %a") if x else "-"

    label = d.label.text("en") if d.label else d.id
    out = [f"{d.id} — {label}: {d.state}" + (f" (source {d.source})" if d.source else "")]
    if d.started_at is None:
        out.append(f"  not started: {d.start_reason}")
        return out
    out.append(f"  started {t(d.started_at)}: {d.start_reason}")
    if d.target:
        out.append(f"  target {d.target}" + (f" ({d.target_reason})" if d.target_reason else ""))
    if d.extension:
        out.append(
            f"  extended to {d.extension['target']}; reason: {d.extension.get('reason') or '-'}"
        )
    out.append(f"  due {t(d.due_at)}" + (f"; warning at {t(d.warn_at)}" if d.warn_at else ""))
    for a, b in d.pauses:
        out.append(f"  paused {t(a)} → {t(b) if b else 'now'}")
    minutes = int(d.counted.total_seconds()) // 60
    out.append(f"  counted so far: {minutes // 60}h{minutes % 60:02d} of {d.measure}")
    if d.stopped_at:
        out.append(f"  stopped {t(d.stopped_at)}: {d.stop_reason}")
    out.extend(f"  skipped {x}" for x in d.skipped_days)
    out.extend(f"  counted {x}" for x in d.counted_days)
    out.extend(f"  warning: {w}" for w in d.warnings)
    return out


# -- pack timers -------------------------------------------------------------------------


def timer_due(
    timer: CompiledTimer, journal: Sequence[Mapping[str, Any]], cal: WorkingCalendar
) -> tuple[dt.datetime, dt.datetime] | None:
    """(event instant, due instant) of a pack timer for this case, if its event happened."""
    moments = timeline(journal)
    at, _ = _event_at(timer.start, moments, None, cal, first=False)
    if at is None:
        return None
    try:
        due = subtract(timer.after, at, cal) if timer.before else timer.after.add(at, cal)
    except (ValueError, OverflowError):  # refused at load time; a moment out of range
        return None
    return at, due


def needs_time(proc: CompiledProcedure) -> bool:
    """Whether changes of this procedure's cases must recompute deadlines and timers."""
    return bool(
        proc.slas or proc.timers or any(s.from_ is not None for s in proc.pack.schedules.values())
    )


# -- scheduling (in the transaction of each change) ----------------------------------------

TIME_KINDS = ("sla.warn", "sla.breach", "pack.timer")


def _iso(x: dt.datetime) -> str:
    return x.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S")


@dataclass
class TimePlan:
    """What a case's journal says about its time: its SLAs now, its pack timers, the next due."""

    closed: bool
    running: list[Deadline]  # SLAs whose clock runs (not paused, stopped or unstarted)
    escalated: set[tuple[str, Any, Any]]  # (kind, sla, started_at) already warned/breached
    pack_timers: list[tuple[CompiledTimer, dt.datetime, dt.datetime]]  # timer, event, due
    next_due: dt.datetime | None


def _memo(
    facts_of: Callable[[Mapping[str, Any], str], Mapping[str, Any]],
) -> Callable[[Mapping[str, Any], str], Mapping[str, Any]]:
    """``facts_of`` computed once per moment of a replay: every SLA with a ``when:`` or a
    pause condition asks again for the facts of the same moments. The fields mapping is
    kept with its facts, so its id cannot be reused by another while the replay runs."""
    seen: dict[tuple[int, str], tuple[Mapping[str, Any], Mapping[str, Any]]] = {}

    def once(fields: Mapping[str, Any], step: str) -> Mapping[str, Any]:
        hit = seen.get((id(fields), step))
        if hit is None or hit[0] is not fields:
            hit = seen[(id(fields), step)] = (fields, facts_of(fields, step))
        return hit[1]

    return once


def plan(
    proc: CompiledProcedure,
    history: Sequence[Mapping[str, Any]],
    cal: WorkingCalendar,
    now: dt.datetime,
) -> TimePlan:
    """Replay ``history`` (the case's journal, oldest first) into its deadlines and timers."""
    closed = any(e["kind"] == "closed" for e in history)
    found: list[Deadline] = []
    if proc.slas:
        found = compute(
            proc.slas,
            history,
            cal,
            now,
            _memo(lambda f, s: proc.facts(f, event="timer", step=s, calendar=cal)),
            explain=False,
        )
    escalated = {
        (e["kind"], (e.get("data") or {}).get("sla"), (e.get("data") or {}).get("started_at"))
        for e in history
        if e["kind"] in ("sla_warning", "sla_breached")
    }
    running = [d for d in found if _running(d)] if not closed else []
    next_due = min(
        (
            d.due_at
            for d in running
            if d.due_at is not None and ("sla_breached", d.id, _started(d)) not in escalated
        ),
        default=None,
    )
    pack_timers = []
    current = None
    if any(t.when is not None for t in proc.timers.values()):
        moments = timeline(history)
        current = moments[-1] if moments else None
    for timer in proc.timers.values():
        if closed and not _is(timer.start, "closed"):
            continue
        if timer.when is not None and not (
            current is not None
            and holds(
                timer.when,
                proc.facts(current.fields, event="timer", step=current.step, calendar=cal),
            )
        ):
            continue  # ``when:`` false for this case: no such timer
        when = timer_due(timer, history, cal)
        if when is not None:
            pack_timers.append((timer, *when))
    return TimePlan(closed, running, escalated, pack_timers, next_due)


def _promised(
    d: Deadline,
    p: PromisedTarget,
    fields: Mapping[str, Any],
    start: dt.datetime,
    cal: WorkingCalendar,
) -> bool:
    """A promised date as ``d``'s due instant; False when there is no deadline yet (the
    field is empty and the pack chose ``if_empty: none``)."""
    promised = _parse_instant(fields.get(p.field), cal)
    assert isinstance(p.max, Duration)  # param.<name> was resolved when compiled
    limit = p.max.add(start, cal)
    if promised is None and p.if_empty == "none":
        d.target_reason = f"field '{p.field}' not filled in yet: no deadline until it is"
        d.state = "pending"
        return False
    if promised is None:
        d.target_reason = f"field '{p.field}' not filled in yet: at most {p.max}"
        d.target, d.due_at = f"≤ {p.max}", limit
    else:
        d.target_reason = f"promised in field '{p.field}' (at most {p.max})"
        d.target, d.due_at = "promised", min(promised, limit)
    return True


def _running(d: Deadline) -> bool:
    return not (
        d.started_at is None or d.stopped_at is not None or d.due_at is None or d.state == "paused"
    )


def _started(d: Deadline) -> str | None:
    return d.started_at.astimezone(dt.UTC).isoformat() if d.started_at else None


#: one timer a plan asks for: (kind, idempotency key, due instant, payload)
TimerSpec = tuple[str, str, dt.datetime, dict[str, Any]]


def planned(case_id: int, tp: TimePlan) -> tuple[TimerSpec, ...]:
    """The SLA and pack timers ``tp`` asks for, in the order :func:`schedule` writes them."""
    out: list[TimerSpec] = []
    for d in tp.running:
        if d.due_at is None or d.started_at is None:
            continue
        started = d.started_at.astimezone(dt.UTC).isoformat()
        base = f"{case_id}:{d.id}:{_iso(d.started_at)}:{d.target}"
        # (timer kind, journal kind of its escalation, when): the warning, then the breach
        for kind, escalation, at in (
            ("sla.warn", "sla_warning", d.warn_at),
            ("sla.breach", "sla_breached", d.due_at),
        ):
            if at is None or (escalation, d.id, started) in tp.escalated:
                continue
            out.append((kind, f"{kind}:{base}", at, {"sla": d.id, "started_at": started}))
    for timer, event_at, due in tp.pack_timers:
        out.append(
            (
                "pack.timer",
                f"pack.timer:{case_id}:{timer.id}:{_iso(event_at)}",
                due,
                {"timer": timer.id, "event_at": event_at.astimezone(dt.UTC).isoformat()},
            )
        )
    return tuple(out)


def schedule(
    conn: Connection,
    company_id: int,
    case_id: int,
    specs: Sequence[TimerSpec],
    before: Sequence[TimerSpec] | None = None,
) -> None:
    """(Re)schedule the case's SLA and pack timers to ``specs`` (:func:`planned`) in
    ``conn``: every other pending one of those kinds is cancelled. ``before``: the specs
    the case's timers were last scheduled to, when known (:class:`TimeMemory`) — then
    only the timers that differ are written."""
    if before is None:
        timers.cancel_kinds(conn, case_id, TIME_KINDS)
        changed: Sequence[TimerSpec] = specs
    else:
        had = {spec[1]: spec for spec in before}
        timers.cancel_keys(conn, sorted(had.keys() - {spec[1] for spec in specs}))
        changed = [spec for spec in specs if had.get(spec[1]) != spec]
    timers.schedule_many(conn, company_id, case_id, changed)


# -- what a process remembers between changes of a case ------------------------------------


@dataclass(frozen=True)
class TimeState:
    """What a committed change of a case left for the next one: the case's journal as
    deadlines replay it (``history``) and the timers its plan scheduled (``timers``)."""

    version: int  # the case row's version this change wrote
    history: list[dict[str, Any]]
    timers: tuple[TimerSpec, ...]


class TimeMemory:
    """Per process, the :class:`TimeState` of the cases changed lately (at most ``size``
    cases and ``entries`` journal entries, the least recently used going first).

    The next change of such a case, made at that very version, skips reading the case's
    journal and, when its plan asks for the same timers, rewriting them. A case row at a
    given version never changes (every write of a case raises its version, in the same
    transaction as its journal entries), so a state is either the case's or stale, and a
    stale one (another process changed the case) is never used. Only what the journal's
    replay does not depend on can be missing from a remembered history: a ``timer_skipped``
    note another process wrote (it changes neither step, fields nor actions). States are
    remembered after their transaction committed (:func:`core.storage.db.after_commit`).
    """

    def __init__(self, size: int = 4096, entries: int = 100_000) -> None:
        # at most ``size`` cases and ``entries`` journal entries in all (an entry is a few
        # hundred bytes to a few KB: a case with a long journal must not hold the memory)
        self.size, self.entries = size, entries
        self._states: OrderedDict[tuple[int, int], TimeState] = OrderedDict()
        self._held = 0  # journal entries held
        self._lock = threading.Lock()

    def get(self, company_id: int, case_id: int, version: int) -> TimeState | None:
        """The state the change that wrote ``version`` of the case left, if remembered."""
        with self._lock:
            state = self._states.get((company_id, case_id))
            if state is None or state.version != version:
                return None
            self._states.move_to_end((company_id, case_id))
            return state

    def put(self, company_id: int, case_id: int, state: TimeState) -> None:
        if len(state.history) > self.entries // 10:  # a journal too long to keep
            self.forget(company_id, case_id)
            return
        with self._lock:
            old = self._states.pop((company_id, case_id), None)
            if old is not None:
                self._held -= len(old.history)
            self._states[(company_id, case_id)] = state
            self._held += len(state.history)
            while len(self._states) > self.size or self._held > self.entries:
                _, gone = self._states.popitem(last=False)
                self._held -= len(gone.history)

    def forget(self, company_id: int, case_id: int) -> None:
        with self._lock:
            gone = self._states.pop((company_id, case_id), None)
            if gone is not None:
                self._held -= len(gone.history)

    def clear(self) -> None:
        """Forget every case (as a process that just started)."""
        with self._lock:
            self._states.clear()
            self._held = 0


# -- timer handlers (the worker's transaction) -------------------------------------------------


def _case_state(svc: CaseService, conn: Connection, due: timers.DueTimer) -> Any:
    row = conn.execute(select(t.case).where(t.case.c.id == due.case_id)).first()
    if row is None:
        return None
    rt = svc.company_by_id(row.company_id)
    if rt is None:
        return None
    return row, rt, svc.procedure_for_version(conn, row.procedure_version_id)


def _sla_timer(kind: str, svc: CaseService, conn: Connection, due: timers.DueTimer) -> None:
    got = _case_state(svc, conn, due)
    if got is None:
        return
    row, rt, proc = got
    sla = proc.slas.get(due.payload.get("sla"))
    if sla is None or row.status != "open":
        return
    history = chain.case_history(conn, rt.id, row.id)
    for e in history:
        data = e.get("data") or {}
        if (
            e["kind"] == kind
            and data.get("sla") == sla.id
            and data.get("started_at") == due.payload.get("started_at")
        ):
            return  # already escalated for this run of the clock
    now = svc.clock.now()
    found = compute(
        {sla.id: sla},
        history,
        svc.calendar(rt.key),
        now,
        lambda f, s: proc.facts(f, event="timer", step=s, calendar=svc.calendar(rt.key)),
        explain=False,
    )
    d = found[0]
    if d.started_at is None or _started(d) != due.payload.get("started_at"):
        return  # the clock restarted since: a newer timer covers it
    wanted = ("breached",) if kind == "sla_breached" else ("warned", "breached")
    if d.state not in wanted:
        return  # paused, met or moved since the timer was set
    entry = {
        "kind": kind,
        "data": {
            "sla": sla.id,
            "started_at": due.payload.get("started_at"),
            "due_at": d.due_at.astimezone(dt.UTC).isoformat() if d.due_at else None,
            "target": d.target,
        },
    }
    effects = sla.on_breach if kind == "sla_breached" else sla.on_warning
    svc.pipeline(conn, rt).system(row.id, entry, effects, f"sla.{sla.id}", history=history)


def _pack_timer(svc: CaseService, conn: Connection, due: timers.DueTimer) -> None:
    got = _case_state(svc, conn, due)
    if got is None:
        return
    row, rt, proc = got
    timer = proc.timers.get(due.payload.get("timer"))
    if timer is None:
        return
    if row.status != "open" and not _is(timer.start, "closed"):
        return
    data = {"timer": timer.id, "event_at": due.payload.get("event_at")}
    facts = proc.facts(
        row.fields,
        event="timer",
        step=row.step,
        now=svc.clock.now(),
        calendar=svc.calendar(rt.key),
    )
    if (
        (timer.while_steps and row.step not in timer.while_steps)
        or (timer.while_cond is not None and not holds(timer.while_cond, facts))
        or (timer.when is not None and not holds(timer.when, facts))
    ):
        entry = {"kind": "timer_skipped", "data": {**data, "step": row.step}}
        svc.pipeline(conn, rt).note(row.id, proc, entry)
        return
    entry = {"kind": "timer_fired", "data": data}
    svc.pipeline(conn, rt).system(row.id, entry, timer.then, f"timer.{timer.id}")


timers.handler("sla.warn")(lambda svc, conn, due: _sla_timer("sla_warning", svc, conn, due))
timers.handler("sla.breach")(lambda svc, conn, due: _sla_timer("sla_breached", svc, conn, due))
timers.handler("pack.timer")(_pack_timer)
