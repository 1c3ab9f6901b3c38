"""A procedure compiled for one company: conditions turned to IR, effects parsed.

A :class:`CompiledProcedure` is immutable. It is rebuilt from the definition stored with
its procedure version, so a running case keeps the exact rules it started with even
after the pack on disk changed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.rules import ir
from core.rules.derive import Derivations, Env, compute, item_matches, matcher
from core.rules.expr import FieldType, parse_condition, parse_item_condition, parse_value
from core.spec.definitions import EVENTS, ActionDef, PackDef, StepDef
from core.spec.effects import EffectType, parse_effects
from core.spec.fields import fact_reader, field_type
from core.spec.slas import (
    CompiledSla,
    CompiledTimer,
    ScheduleGate,
    compile_schedule_gates,
    compile_time,
)


@dataclass(frozen=True)
class CompiledRule:
    """One rule of a procedure: its condition as IR and its parsed effects."""

    id: str
    cond: ir.Cond
    effects: tuple[tuple[EffectType, Any], ...]
    source: str | None = None


@dataclass
class CompiledProcedure:
    """A pack compiled for one company's parameters: rules, guards, SLAs, timers (immutable)."""

    pack: PackDef
    company: str
    params: dict[str, Any]
    digest: str
    rules: tuple[CompiledRule, ...]
    guards: dict[tuple[str, str], ir.Cond]
    ruleset: ir.RuleSet
    guard_ruleset: ir.RuleSet
    raw: dict[str, Any] = field(default_factory=dict)
    version: int = 0  # set once registered in the database
    slas: dict[str, CompiledSla] = field(default_factory=dict)
    timers: dict[str, CompiledTimer] = field(default_factory=dict)
    #: the ``while:`` / ``when:`` of per-case schedules (by schedule name)
    schedule_gates: dict[str, ScheduleGate] = field(default_factory=dict)
    derived: Derivations = field(default_factory=Derivations)
    #: the conditions of actions' to: branches and require_when: (see branch_id)
    form_ruleset: ir.RuleSet = field(default_factory=lambda: ir.RuleSet.of("none", ()))
    #: the conditions of the pack reports' columns: report -> column -> condition
    reports: dict[str, dict[str, ir.Cond]] = field(default_factory=dict)
    #: the pack's fields holding uploads (core.cases.attachments): its attachment fields,
    #: and its list fields whose items have one
    attachment_fields: frozenset[str] = field(init=False, default=frozenset())
    #: per field, the function turning its stored value into the fact rules see
    _fact_readers: dict[str, Callable[[Any], ir.Scalar | None]] = field(
        init=False, default_factory=dict, compare=False, repr=False
    )
    #: item conditions of open_case's where:, compiled on first use
    _item_conditions: dict[tuple[str, str], Any] = field(
        init=False, default_factory=dict, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        self._fact_readers = {n: fact_reader(f) for n, f in self.pack.fields.items()}
        self.attachment_fields = frozenset(
            n
            for n, f in self.pack.fields.items()
            if f.type == "attachment" or any(s.type == "attachment" for s in (f.of or {}).values())
        )

    @property
    def key(self) -> str:
        return self.pack.procedure

    def step(self, name: str) -> StepDef:
        return self.pack.steps[name]

    def action(self, step: str, name: str) -> ActionDef | None:
        st = self.pack.steps.get(step)
        return st.actions.get(name) if st else None

    def action_roles(self, step: str, name: str) -> list[str]:
        st = self.pack.steps[step]
        act = st.actions[name]
        return list(act.role or st.role)

    def facts(
        self,
        fields: Mapping[str, Any],
        *,
        event: str,
        step: str,
        action: str | None = None,
        from_step: str | None = None,
        now: dt.datetime | None = None,
        calendar: Calendar | None = None,
        actor: ActorLike | None = None,
        derive: bool = True,
    ) -> dict[str, ir.Scalar]:
        """The one fact rules see: the case's fields, the system facts and the derived
        values (``derive:`` and those conditions compute inline), computed at ``now`` on
        the company ``calendar`` for ``actor`` (without them, what needs them has no
        value). ``derive=False``: no derived value, for a reader whose conditions use
        none (a pack report reading many cases)."""
        out: dict[str, ir.Scalar] = {}
        readers = self._fact_readers
        for name, stored in fields.items():  # the values a case has, not every field
            read = readers.get(name) if stored is not None else None
            if read is not None and (value := read(stored)) is not None:
                out[name] = value
        out["event"] = event
        out["step"] = step
        if action is not None:
            out["action"] = action
        if from_step is not None:
            out["from_step"] = from_step
        if derive and self.derived.exprs:
            env = derive_env(now, calendar, actor)
            if self.item_readers:
                env = dataclasses.replace(
                    env,
                    lists={
                        name: _items(readers, fields.get(name))
                        for name, readers in self.item_readers.items()
                    },
                    matcher=self.derived.compiled,
                )
            compute(self.derived, out, env)
        return out

    def items_where(self, list_field: str, where: str, stored: Any) -> list[bool]:
        """Whether the item condition ``where`` (an ``open_case``'s ``where:``, checked
        when the pack loaded) holds for each stored item of ``list_field``."""
        key = (list_field, where)
        compiled = self._item_conditions.get(key)
        if compiled is None:
            fdef = self.pack.fields[list_field]
            cond, per_item = parse_item_condition(where, dict(field_type(fdef).of), self.params)
            readers = tuple((sub, fact_reader(d)) for sub, d in (fdef.of or {}).items())
            compiled = self._item_conditions[key] = (cond, per_item, matcher(cond), readers)
        cond, per_item, test, readers = compiled
        return item_matches(_items(readers, stored), cond, per_item, Env(), test)

    @functools.cached_property
    def item_readers(self) -> dict[str, tuple[tuple[str, Callable[[Any], Any]], ...] | None]:
        """Per list field some derived value reads: its item fields read, each with the
        function turning a stored value into a fact — None when every one of them is
        stored as its fact already (text, choice, number, boolean), so the stored items
        are the facts (built once: this is per action)."""
        out: dict[str, tuple[tuple[str, Callable[[Any], Any]], ...] | None] = {}
        for name, subs in self.derived.lists().items():
            defs = self.pack.fields[name].of or {}
            used = [defs[sub] for sub in sorted(subs) if sub in defs]
            if all(_stored_is_fact(d) for d in used):
                out[name] = None
            else:
                out[name] = tuple(
                    (sub, fact_reader(defs[sub])) for sub in sorted(subs) if sub in defs
                )
        return out


def _stored_is_fact(fdef: Any) -> bool:
    """Whether a field's stored value is the fact rules compare (checked when stored)."""
    return (
        fdef.type not in ("date", "datetime", "list", "attachment")
        and fdef.plugin_kind is None
        and not fdef.multiple
    )


def _items(
    readers: tuple[tuple[str, Callable[[Any], Any]], ...] | None, stored: Any
) -> list[dict[str, Any]]:
    """The items of a list field as facts (one mapping per item)."""
    if not isinstance(stored, list):
        return []
    if readers is None:
        return [item for item in stored if isinstance(item, dict)]
    out = []
    for item in stored:
        if not isinstance(item, dict):
            continue
        facts: dict[str, ir.Scalar] = {}
        for sub, read in readers:
            value = item.get(sub)
            if value is not None and (value := read(value)) is not None:
                facts[sub] = value
        out.append(facts)
    return out


class Calendar(Protocol):
    """What derived values need of a company's working calendar."""

    def local_date(self, moment: dt.datetime) -> dt.date: ...

    def is_workday(self, day: dt.date) -> bool: ...


class ActorLike(Protocol):
    """Who acts, as derived values see them (``core.cases.commit.Actor``)."""

    @property
    def username(self) -> str: ...

    @property
    def roles(self) -> frozenset[str]: ...

    @property
    def departments(self) -> frozenset[str]: ...


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def derive_env(now: dt.datetime | None, calendar: Calendar | None, actor: ActorLike | None) -> Env:
    """The environment of derived values: the moment, the calendar and who acts."""
    local_date = workdays = None
    if calendar is not None:
        cal = calendar

        def local_date(seconds: int) -> int:
            return cal.local_date(_EPOCH + dt.timedelta(seconds=seconds)).toordinal()

        def workdays(a: int, b: int) -> int:
            return sum(1 for n in range(a + 1, b + 1) if cal.is_workday(dt.date.fromordinal(n)))

    return Env(
        now=None if now is None else int((now - _EPOCH).total_seconds()),
        local_date=local_date,
        workdays=workdays,
        username=None if actor is None else actor.username,
        roles=frozenset() if actor is None else frozenset(actor.roles),
        departments=frozenset() if actor is None else frozenset(actor.departments),
    )


#: the "step" and "action" of the opening form in form rule ids
OPENING = "open"


def branch_id(step: str, action: str, i: int) -> str:
    """The rule id of branch ``i`` of an action's ``to:`` in the form ruleset."""
    return f"to:{step}.{action}.{i}"


def required_id(step: str, action: str, field_name: str) -> str:
    """The rule id of an action's ``require_when:`` of ``field_name``."""
    return f"required:{step}.{action}.{field_name}"


def compile_procedure(
    pack: PackDef,
    params: Mapping[str, Any],
    *,
    company: str,
    effects: Mapping[str, EffectType],
    raw: Mapping[str, Any] | None = None,
) -> CompiledProcedure:
    """Compile a validated pack with a company's parameters (raises on invalid input)."""
    effective = {k: v.default for k, v in pack.parameters.items()}
    effective.update(params)
    types = pack_field_types(pack)
    derived = Derivations()
    for name, ddef in pack.derive.items():
        expr, kind = parse_value(ddef.value, types, effective, derived)
        derived.add(expr, kind, name=name)
        types[name] = FieldType(kind)
    rules: list[CompiledRule] = []
    for rule in pack.rules:
        cond = parse_condition(rule.when, types, effective, derived) if rule.when else ir.TRUE
        rules.append(CompiledRule(rule.id, cond, parse_effects(rule.then, effects), rule.source))
    guards: dict[tuple[str, str], ir.Cond] = {}
    forms: dict[str, ir.Cond] = {  # branches of to: and require_when:, by rule id
        required_id(OPENING, OPENING, fname): parse_condition(when, types, effective, derived)
        for fname, when in pack.open.require_when.items()
    }
    for sname, step in pack.steps.items():
        for aname, action in step.actions.items():
            if action.guard:
                guards[(sname, aname)] = parse_condition(action.guard, types, effective, derived)
            if isinstance(action.to, list):
                for i, branch in enumerate(action.to):
                    if branch.when:
                        forms[branch_id(sname, aname, i)] = parse_condition(
                            branch.when, types, effective, derived
                        )
            for fname, when in action.require_when.items():
                forms[required_id(sname, aname, fname)] = parse_condition(
                    when, types, effective, derived
                )
    raw_def = dict(raw) if raw is not None else pack.model_dump(mode="json", by_alias=True)
    digest = hashlib.sha256(
        json.dumps(
            {"pack": raw_def, "params": effective}, sort_keys=True, ensure_ascii=False, default=str
        ).encode()
    ).hexdigest()
    # durable_rules ruleset names are process-global and permanent: carry company,
    # procedure and the digest of exactly these rules
    base = f"kefu:{company}:{pack.procedure}:{digest[:16]}"
    ruleset = ir.RuleSet.of(base, (ir.CompiledRule(r.id, r.cond) for r in rules))
    guard_ruleset = ir.RuleSet.of(
        base + ":guards", (ir.CompiledRule(f"{s}.{a}", c) for (s, a), c in guards.items())
    )
    form_ruleset = ir.RuleSet.of(base + ":forms", (ir.CompiledRule(k, c) for k, c in forms.items()))
    slas, timers = compile_time(pack, types, effective, effects, derived)
    reports = {
        rname: {
            cname: parse_condition(col.when, types, effective, derived)
            for cname, col in rep.columns.items()
            if col.when
        }
        for rname, rep in pack.reports.items()
    }
    return CompiledProcedure(
        pack,
        company,
        effective,
        digest,
        tuple(rules),
        guards,
        ruleset,
        guard_ruleset,
        raw_def,
        slas=slas,
        timers=timers,
        schedule_gates=compile_schedule_gates(pack, types, effective, derived),
        derived=derived,
        form_ruleset=form_ruleset,
        reports=reports,
    )


def pack_field_types(pack: PackDef, raw: Mapping[str, Any] | None = None) -> dict[str, FieldType]:
    """Field types rules may use: the declared fields and the system facts.

    With ``raw`` (the document as written), step and action names come from it too, so
    a condition naming a step whose definition is broken is not a second problem.
    """
    types_: dict[str, FieldType] = {name: field_type(f) for name, f in pack.fields.items()}
    steps = set(pack.steps) | set(_raw_keys(raw, "steps") or ())
    actions = {a for s in pack.steps.values() for a in s.actions}
    for sdef in _raw_dict(raw, "steps").values():
        actions |= set(_raw_dict(sdef, "actions"))
    types_["event"] = FieldType("choice", EVENTS)
    types_["action"] = FieldType("choice", tuple(sorted(map(str, actions))))
    types_["step"] = FieldType("choice", tuple(sorted(map(str, steps))))
    types_["from_step"] = types_["step"]
    return types_


def _raw_dict(raw: Any, key: str) -> dict[Any, Any]:
    value = raw.get(key) if isinstance(raw, Mapping) else None
    return value if isinstance(value, dict) else {}


def _raw_keys(raw: Any, key: str) -> set[str] | None:
    """Names written under ``key`` (valid or not); None when ``key`` is not a mapping."""
    if not isinstance(raw, Mapping) or key not in raw:
        return set()
    value = raw[key]
    return {str(k) for k in value} if isinstance(value, dict) else None
