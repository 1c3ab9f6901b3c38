"""SLAs and pack timers compiled from a pack: conditions to IR, effects parsed.

What the pack declares under ``slas:``, on a step's ``sla:`` and under ``timers:``,
ready for :mod:`core.cases.deadlines` to replay against a case's journal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.rules import ir
from core.rules.derive import Derivations
from core.rules.expr import parse_condition
from core.spec.definitions import EventRef, PackDef, PauseDef, PromisedTarget, StepSlaDef, TargetRow
from core.spec.effects import EffectType, parse_effects
from core.time.durations import Duration, ParamDuration

# -- compiled definitions ----------------------------------------------------------------


@dataclass(frozen=True)
class CompiledSla:
    """An SLA ready to run: when it starts and stops, its targets, pauses and effects."""

    id: str
    label: Any
    source: str | None
    start: Any  # "opened" | "closed" | EventRef
    stop: Any
    step: str | None  # a step's own SLA
    targets: tuple[tuple[ir.Cond | None, Duration | PromisedTarget], ...]
    promised: PromisedTarget | None
    warning: str | None
    pause_steps: frozenset[str]
    pause_cond: ir.Cond | None
    extension: Any  # ExtensionDef | None
    on_warning: tuple[tuple[EffectType, Any], ...]
    on_breach: tuple[tuple[EffectType, Any], ...]
    when: ir.Cond | None = None


@dataclass(frozen=True)
class CompiledTimer:
    """A pack timer ready to run: its delay, start event, pause and effects."""

    id: str
    label: Any
    source: str | None
    after: Duration  # the offset from the event
    start: Any
    while_steps: frozenset[str]
    while_cond: ir.Cond | None
    then: tuple[tuple[EffectType, Any], ...]
    when: ir.Cond | None = None
    before: bool = False  # due ``after`` *before* the event (a moment in a field)


@dataclass(frozen=True)
class ScheduleGate:
    """When an occurrence of a per-case schedule applies its ``then:``: while the case is
    at one of ``while_steps`` (none: anywhere) and ``while_cond`` and ``when`` hold."""

    while_steps: frozenset[str]
    while_cond: ir.Cond | None
    when: ir.Cond | None


def resolve(d: Any, params: Mapping[str, Any]) -> Duration:
    """A duration of the pack, ``param.<name>`` taken from the company's parameters."""
    if isinstance(d, ParamDuration):
        return Duration.parse(str(params[d.name]))
    assert isinstance(d, Duration)
    return d


def _promised_for(p: PromisedTarget, params: Mapping[str, Any]) -> PromisedTarget:
    if isinstance(p.max, ParamDuration):
        return p.model_copy(update={"max": resolve(p.max, params)})
    return p


def _promised(p: PromisedTarget | None) -> PromisedTarget:
    assert p is not None  # a row has a target or a promised date (checked by the schema)
    return p


def _pause(
    p: PauseDef | None, types: Any, params: Mapping[str, Any], derived: Derivations
) -> tuple[frozenset[str], ir.Cond | None]:
    if p is None:
        return frozenset(), None
    cond = parse_condition(p.while_, types, params, derived) if p.while_ else None
    return frozenset(p.steps), cond


def _compile_sla(
    sid: str,
    d: StepSlaDef,
    start: Any,
    stop: Any,
    step: str | None,
    types: Any,
    params: Mapping[str, Any],
    effects: Mapping[str, EffectType],
    derived: Derivations,
) -> CompiledSla:
    targets: tuple[tuple[ir.Cond | None, Duration | PromisedTarget], ...] = ()
    promised = None
    if isinstance(d.target, Duration | ParamDuration):
        targets = ((None, resolve(d.target, params)),)
    elif isinstance(d.target, PromisedTarget):
        promised = _promised_for(d.target, params)
    else:
        rows: list[TargetRow] = list(d.target)
        targets = tuple(
            (
                parse_condition(r.when, types, params, derived) if r.when else None,
                resolve(r.target, params)
                if r.target is not None
                else _promised_for(_promised(r.promised), params),
            )
            for r in rows
        )
    pause_steps, pause_cond = _pause(d.pause, types, params, derived)
    return CompiledSla(
        sid,
        d.label,
        d.source,
        start,
        stop,
        step,
        targets,
        promised,
        d.warning,
        pause_steps,
        pause_cond,
        (
            d.extension.model_copy(update={"target": resolve(d.extension.target, params)})
            if d.extension is not None
            else None
        ),
        parse_effects(d.on_warning, effects),
        parse_effects(d.on_breach, effects),
        parse_condition(d.when, types, params, derived) if d.when else None,
    )


def compile_time(
    pack: PackDef,
    types: Any,
    params: Mapping[str, Any],
    effects: Mapping[str, EffectType],
    derived: Derivations,
) -> tuple[dict[str, CompiledSla], dict[str, CompiledTimer]]:
    """The pack's SLAs (``slas:`` and each step's ``sla:``) and ``timers:``, compiled."""
    slas: dict[str, CompiledSla] = {}
    for sid, sdef in pack.slas.items():
        slas[sid] = _compile_sla(
            sid, sdef, sdef.start, sdef.stop, None, types, params, effects, derived
        )
    for sname, step in pack.steps.items():
        if step.sla is not None:
            slas[sname] = _compile_sla(
                sname, step.sla, EventRef(step=sname), None, sname, types, params, effects, derived
            )
    timers: dict[str, CompiledTimer] = {}
    for tid, tdef in pack.timers.items():
        wsteps, wcond = _pause(tdef.while_, types, params, derived)
        timers[tid] = CompiledTimer(
            tid,
            tdef.label,
            tdef.source,
            resolve(tdef.after or tdef.before, params),
            tdef.from_,
            wsteps,
            wcond,
            parse_effects(tdef.then, effects),
            parse_condition(tdef.when, types, params, derived) if tdef.when else None,
            before=tdef.before is not None,
        )
    return slas, timers


def compile_schedule_gates(
    pack: PackDef, types: Any, params: Mapping[str, Any], derived: Derivations
) -> dict[str, ScheduleGate]:
    """The ``while:`` and ``when:`` of the pack's per-case schedules that have one."""
    out: dict[str, ScheduleGate] = {}
    for name, sdef in pack.schedules.items():
        if sdef.from_ is None or (sdef.when is None and sdef.while_ is None):
            continue
        wsteps, wcond = _pause(sdef.while_, types, params, derived)
        when = parse_condition(sdef.when, types, params, derived) if sdef.when else None
        out[name] = ScheduleGate(wsteps, wcond, when)
    return out
