"""Effect types: what a rule's ``then:`` may do.

Each effect in a rule file is a one-key mapping, ``- move: dispatch`` or
``- notify: {to: customer, template: repair-done}``. An :class:`EffectType` gives the
schema of its argument (checked at load time, problems reported with file:line:col), an
optional cross-reference check against the pack, and ``apply``, which changes the
:class:`Change` being built for one action. ``apply`` runs inside the action's
transaction and must only touch the ``Change``: the case service persists it.

The built-in types live here because the core vocabulary needs them; plugins add more
through the ``kefu_effect_types`` hook with the same class.
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from core.rules.derive import plain
from core.rules.expr import ExprError, did_you_mean, parse_item_condition
from core.spec.definitions import KEY_RE, PACK_RE, Label, PackDef
from core.spec.diagnostics import yaml_value
from core.spec.fields import FieldValueError, coerce, field_type
from core.spec.templates import QUEUED, queued

if TYPE_CHECKING:  # types only: core.spec.procedures imports this module (a cycle at run time)
    from core.spec.procedures import CompiledProcedure


@dataclass
class Assignee:
    """Who a case waits on: a ``role``, a ``department`` or a ``person``, by name."""

    kind: Literal["role", "department", "person"]
    ref: str

    def to_json(self) -> str:
        return f"{self.kind}:{self.ref}"

    @classmethod
    def parse(cls, text: str) -> Assignee:
        kind, _, ref = text.partition(":")
        if kind not in ("role", "department", "person") or not ref:
            raise ValueError(f"not an assignee: {text!r}")
        return cls(kind, ref)  # type: ignore[arg-type]  # kind checked just above


@dataclass
class JournalDraft:
    """A journal entry an effect adds to the change (written by the pipeline)."""

    kind: str
    data: dict[str, Any]
    rule_id: str | None = None
    facts: dict[str, Any] | None = None


@dataclass
class OutboxDraft:
    """A message a ``notify`` effect queues (written to the outbox by the pipeline)."""

    channel: str
    recipient: str
    template: str
    payload: dict[str, Any]


@dataclass
class LinkedCaseDraft:
    """A case an ``open_case`` effect asks for (opened by the pipeline, one level deeper)."""

    procedure: str
    link: str
    fields: dict[str, Any]
    rule_id: str


@dataclass
class Change:
    """Everything one action (or case opening) will write, built up before persisting."""

    procedure: CompiledProcedure
    case_number: str
    fields: dict[str, Any]
    step: str
    assignees: list[Assignee]
    status: str
    facts: Mapping[str, Any] = field(default_factory=dict)
    journal: list[JournalDraft] = field(default_factory=list)
    outbox: list[OutboxDraft] = field(default_factory=list)
    linked: list[LinkedCaseDraft] = field(default_factory=list)
    refusal: tuple[str, str] | None = None
    now: dt.datetime | None = None
    # set by the case service for effects that must read the database (dispatch):
    # conn (the action's transaction), company_id, company (CompanyDef), case_id (None when opening)
    context: dict[str, Any] = field(default_factory=dict)

    def note(self, kind: str, rule_id: str | None, **data: Any) -> None:
        self.journal.append(
            JournalDraft(kind, data, rule_id, dict(self.facts) if rule_id else None)
        )


@dataclass(frozen=True)
class Problem:
    """A load-time problem found by an effect's ``check``; ``loc`` is relative to the args."""

    loc: tuple[str | int, ...]
    code: str
    message: str
    hint: str | None = None


@dataclass(frozen=True)
class EffectType:
    """An effect usable under ``then:``: its name, argument model, apply and load-time check."""

    name: str
    args: type[BaseModel]
    apply: Callable[[Change, Any, str], None]
    check: Callable[..., list[Problem]] | None = None
    doc: str = ""

    def run_check(self, args: Any, pack: PackDef, extensions: Any) -> list[Problem]:
        """Run ``check(args, pack)`` — or ``check(args, pack, extensions)`` when it takes
        the plugin registry too (the dispatch effect checks strategy names against it)."""
        if self.check is None:
            return []
        if len(inspect.signature(self.check).parameters) >= 3:
            return self.check(args, pack, extensions)
        return self.check(args, pack)


def parse_effects(
    raw: Sequence[Mapping[str, Any]], effects: Mapping[str, EffectType]
) -> tuple[tuple[EffectType, Any], ...]:
    """``then:``-style lists (``- move: closed``) as (effect type, validated args) pairs.

    The pack was checked at load time, so every name is known and every argument valid;
    a KeyError or ValidationError here means an unchecked definition.
    """
    out = []
    for eff in raw:
        ((name, args),) = eff.items()
        etype = effects[name]
        out.append((etype, etype.args.model_validate(args)))
    return tuple(out)


# -- built-in effects -------------------------------------------------------------------


class SetArgs(RootModel[dict[str, Any]]):
    """``set: {field: value, ...}``"""


def _check_set(args: SetArgs, pack: PackDef) -> list[Problem]:
    out: list[Problem] = []
    for name, value in args.root.items():
        fdef = pack.fields.get(name)
        if fdef is None:
            out.append(
                Problem((name,), "K106", f"unknown field '{name}'", _fields_hint(name, pack))
            )
            continue
        try:
            coerce(fdef, value)
        except FieldValueError as exc:
            out.append(
                Problem(
                    (name,), "K111", f"value {yaml_value(value)} does not fit field '{name}': {exc}"
                )
            )
    return out


def _apply_set(change: Change, args: SetArgs, rule_id: str) -> None:
    for name, value in args.root.items():
        stored = coerce(change.procedure.pack.fields[name], value)
        old = change.fields.get(name)
        if old != stored:
            change.fields[name] = stored
            change.note("field_set", rule_id, field=name, old=old, new=stored)


class AssignArgs(BaseModel):
    """``assign: {role: r}`` / ``{department: d}`` / ``{person: p}`` / ``{field: f}``.

    ``field`` names a person field of the case (the engineer chosen at dispatch);
    ``add: true`` keeps the other assignees.
    """

    model_config = ConfigDict(extra="forbid")
    role: str | None = Field(default=None, pattern=KEY_RE)
    department: str | None = Field(default=None, pattern=KEY_RE)
    person: str | None = Field(default=None, pattern=KEY_RE)
    field: str | None = Field(default=None, pattern=KEY_RE)
    add: bool = False

    @model_validator(mode="after")
    def _one(self) -> AssignArgs:
        if sum(x is not None for x in (self.role, self.department, self.person, self.field)) != 1:
            raise ValueError("give exactly one of role, department, person, field")
        return self

    def assignee(self, fields: Mapping[str, Any] | None = None) -> Assignee | None:
        if self.field:
            value = (fields or {}).get(self.field)
            return Assignee("person", value) if isinstance(value, str) and value else None
        if self.role:
            return Assignee("role", self.role)
        if self.department:
            return Assignee("department", self.department)
        assert self.person
        return Assignee("person", self.person)


def _check_assign(args: AssignArgs, pack: PackDef) -> list[Problem]:
    if args.role and args.role not in pack.roles:
        return [
            Problem(("role",), "K104", f"unknown role '{args.role}'", _roles_hint(args.role, pack))
        ]
    if args.field:
        fdef = pack.fields.get(args.field)
        if fdef is None:
            return [
                Problem(
                    ("field",),
                    "K106",
                    f"unknown field '{args.field}'",
                    _fields_hint(args.field, pack),
                )
            ]
        if fdef.type != "person":
            return [
                Problem(("field",), "K111", f"field '{args.field}' is a {fdef.type}, not a person")
            ]
    return []


def _apply_assign(change: Change, args: AssignArgs, rule_id: str) -> None:
    who = args.assignee(change.fields)
    if who is None:
        change.note("assign_skipped", rule_id, reason=f"field '{args.field}' is empty")
        return
    before = [a.to_json() for a in change.assignees]
    if args.add:
        if who not in change.assignees:
            change.assignees.append(who)
    else:
        change.assignees[:] = [who]
    after = [a.to_json() for a in change.assignees]
    if after != before:
        change.note("assigned", rule_id, assignees=after, previous=before)


class MoveArgs(RootModel[str]):
    """``move: step``"""


def _check_move(args: MoveArgs, pack: PackDef) -> list[Problem]:
    if args.root not in pack.steps:
        return [Problem((), "K105", f"unknown step '{args.root}'", _steps_hint(args.root, pack))]
    return []


def _apply_move(change: Change, args: MoveArgs, rule_id: str) -> None:
    if change.step != args.root:
        change.note("moved", rule_id, from_step=change.step, to_step=args.root)
        change.step = args.root


class RefuseArgs(RootModel[str | Label]):
    """``refuse: "message"`` or ``refuse: {zh-CN: …, en: …}``"""


def _apply_refuse(change: Change, args: RefuseArgs, rule_id: str) -> None:
    message = args.root if isinstance(args.root, str) else args.root.text()
    if change.refusal is None:
        change.refusal = (rule_id, message)


class NotifyArgs(BaseModel):
    """``notify: {to: …, template: name, channel: default, include: [fields], address: field}``

    ``to`` is ``customer``, ``assignees``, ``role:x``, ``person:x`` or ``department:x``.
    """

    model_config = ConfigDict(extra="forbid")
    to: str = Field(pattern=r"^(customer|assignees|(role|person|department):[a-z][a-z0-9_]*)$")
    template: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    channel: str = Field(default="default", pattern=r"^[a-z][a-z0-9_-]*$")
    include: list[str] = []
    # a field holding the recipient's address (the customer's email or phone), for the channel
    address: str | None = Field(default=None, pattern=KEY_RE)


def _check_notify(args: NotifyArgs, pack: PackDef) -> list[Problem]:
    out: list[Problem] = []
    if args.to.startswith("role:") and args.to[5:] not in pack.roles:
        out.append(
            Problem(
                ("to",), "K104", f"unknown role '{args.to[5:]}'", _roles_hint(args.to[5:], pack)
            )
        )
    for i, name in enumerate(args.include):
        if name not in pack.fields:
            out.append(
                Problem(("include", i), "K106", f"unknown field '{name}'", _fields_hint(name, pack))
            )
    if args.address and args.address not in pack.fields:
        out.append(
            Problem(
                ("address",),
                "K106",
                f"unknown field '{args.address}'",
                _fields_hint(args.address, pack),
            )
        )
    return out


def _apply_notify(change: Change, args: NotifyArgs, rule_id: str) -> None:
    payload: dict[str, Any] = {
        "case": change.case_number,
        "step": change.step,
        "rule": rule_id,
        "fields": {k: change.fields.get(k) for k in args.include},
    }
    if args.address:
        payload["address"] = change.fields.get(args.address)
    text = _queued_text(change, args)
    if text:
        payload[QUEUED] = text  # rendered after commit (core.spec.templates.with_text)
    change.outbox.append(OutboxDraft(args.channel, args.to, args.template, payload))
    change.note("notified", rule_id, to=args.to, template=args.template, channel=args.channel)


def _queued_text(change: Change, args: NotifyArgs) -> dict[str, Any] | None:
    """The template text (the company's or the pack's ``templates:``) and its variables,
    to render after commit; None when neither has the template."""
    company = change.context.get("company")
    pack = change.procedure.pack
    sources = [company.templates] if company is not None else []
    sources.append(pack.templates)
    if not any(args.template in m for m in sources):
        return None
    locale = company.locale if company is not None else "zh-CN"
    step = pack.steps.get(change.step)
    context = {
        "case": change.case_number,
        "step": change.step,
        "step_label": step.label.text(locale) if step else change.step,
        "company": company.name.text(locale) if company is not None else "",
        "to": args.to,
        "timezone": company.timezone if company is not None else "UTC",
        "fields": dict(change.fields),
    }
    return queued(sources, args.template, locale, context)


class OpenCaseArgs(BaseModel):
    """``open_case: {procedure: pack, link: name, copy: {theirs: mine}, set: {theirs: value}}``

    ``copy`` copies this case's field values into the new case's fields; ``set`` gives
    literal values. ``for_each: <list field>`` opens one case per item of that list, and
    ``copy`` may then name the item's fields as ``item.<field>``; ``where: <condition>``
    (with ``for_each``) opens them only for the items it holds for.
    """

    model_config = ConfigDict(extra="forbid")
    procedure: str = Field(pattern=PACK_RE)
    link: str = Field(default="related", pattern=r"^[a-z0-9][a-z0-9_-]*$")
    copy_: dict[str, str] = Field(default={}, alias="copy")
    set: dict[str, Any] = {}
    for_each: str | None = None
    where: str | None = None


def _check_open_case(args: OpenCaseArgs, pack: PackDef) -> list[Problem]:
    # the target pack is checked when the company's procedures are compiled
    out = []
    each = pack.fields.get(args.for_each) if args.for_each else None
    if args.for_each and (each is None or each.type != "list"):
        out.append(
            Problem(("for_each",), "K106", f"'{args.for_each}' is not a list field of this pack")
        )
    if args.where is not None:
        out += _check_where(args, each, pack)
    for target, source in args.copy_.items():
        if source.startswith("item.") and each is not None and each.of is not None:
            if source[5:] not in each.of:
                out.append(
                    Problem(("copy", target), "K106", f"the items have no field '{source[5:]}'")
                )
        elif source.startswith("item.") and args.for_each is None:
            out.append(Problem(("copy", target), "K106", "item.<field> needs for_each:"))
        elif not source.startswith("item.") and source not in pack.fields:
            out.append(
                Problem(
                    ("copy", target),
                    "K106",
                    f"unknown field '{source}'",
                    _fields_hint(source, pack),
                )
            )
    return out


def _check_where(args: OpenCaseArgs, each: Any, pack: PackDef) -> list[Problem]:
    """``where:`` is a condition on one item of the ``for_each`` list, on the item's own
    fields and the pack's parameters (no moment, calendar or actor: it picks items)."""
    assert args.where is not None
    if args.for_each is None:
        return [Problem(("where",), "K110", "picks items of the for_each list: give for_each")]
    if each is None or each.of is None:
        return []  # the for_each problem is reported already
    params = {k: p.default for k, p in pack.parameters.items()}
    try:
        _, per_item = parse_item_condition(args.where, dict(field_type(each).of), params)
    except ExprError as exc:
        return [Problem(("where",), exc.code, exc.message, exc.hint)]
    if not all(plain(e) for _, e in per_item):
        return [
            Problem(
                ("where",),
                "K110",
                "compares the item's fields with values or with each other; "
                "now, today, working days and actor have no meaning here",
                "test those in the rule's when:, e.g. when: any(defects, due_on < today)",
            )
        ]
    return []


def _apply_open_case(change: Change, args: OpenCaseArgs, rule_id: str) -> None:
    items: list[Any] = [None]
    if args.for_each:
        value = change.fields.get(args.for_each)
        items = [it for it in value if isinstance(it, dict)] if isinstance(value, list) else []
        if args.where is not None:
            keep = change.procedure.items_where(args.for_each, args.where, items)
            items = [it for it, ok in zip(items, keep, strict=True) if ok]
    for item in items:
        fields = {
            target: (item or {}).get(source[5:])
            if source.startswith("item.")
            else change.fields.get(source)
            for target, source in args.copy_.items()
        }
        fields.update(args.set)
        change.linked.append(LinkedCaseDraft(args.procedure, args.link, fields, rule_id))


BUILTIN_EFFECTS: tuple[EffectType, ...] = (
    EffectType("set", SetArgs, _apply_set, _check_set, "set case fields to literal values"),
    EffectType(
        "assign",
        AssignArgs,
        _apply_assign,
        _check_assign,
        "assign the case to a role, department or person",
    ),
    EffectType("move", MoveArgs, _apply_move, _check_move, "move the case to another step"),
    EffectType(
        "refuse",
        RefuseArgs,
        _apply_refuse,
        None,
        "refuse the whole action with a message (nothing is written)",
    ),
    EffectType(
        "notify",
        NotifyArgs,
        _apply_notify,
        _check_notify,
        "queue a notification in the outbox (sent after commit)",
    ),
    EffectType(
        "open_case",
        OpenCaseArgs,
        _apply_open_case,
        _check_open_case,
        "open a linked case of another procedure",
    ),
)


def _hint(what: str, word: str, options: list[str]) -> str:
    guess = did_you_mean(word, options)
    return f"{what}: {', '.join(sorted(options))}" + (
        f" (did you mean '{guess}'?)" if guess else ""
    )


def _fields_hint(word: str, pack: PackDef) -> str:
    return _hint("fields in this pack", word, list(pack.fields))


def _roles_hint(word: str, pack: PackDef) -> str:
    return _hint("roles in this pack", word, list(pack.roles))


def _steps_hint(word: str, pack: PackDef) -> str:
    return _hint("steps in this pack", word, list(pack.steps))
