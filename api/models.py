"""Request and response bodies of the REST API (msgspec structs: strict, fast, in OpenAPI).

Request bodies forbid unknown keys: a misspelt ``expected_versoin`` is a 422 naming it,
never silently ignored. Case field values are checked by the case service against the
procedure's form, so ``fields`` is an open object here.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, overload

import msgspec

from core.cases.service import ActionView, CaseView
from core.spec.definitions import FieldDef, Label
from core.spec.procedures import CompiledProcedure


class Text(msgspec.Struct, rename={"zh_CN": "zh-CN"}):
    """A label in each language (zh-CN always, en when the pack gives one)."""

    zh_CN: str
    en: str | None = None


@overload
def text(label: Label) -> Text: ...


@overload
def text(label: Label | None) -> Text | None: ...


def text(label: Label | None) -> Text | None:
    """A label as the API writes it (no label, no text)."""
    return None if label is None else Text(label.zh_CN, label.en)


class Choice(msgspec.Struct):
    """One option of a choice field: the stored value and its label."""

    value: str
    label: Text


class ItemField(msgspec.Struct):
    """A field of each item of a list field (``type: list``)."""

    name: str
    type: str
    label: Text
    required: bool
    choices: list[Choice] | None = None
    min: float | None = None
    max: float | None = None
    max_length: int | None = None


class FormField(msgspec.Struct):
    """One field of a form: enough to render an input without reading the pack.

    A list field (``type: list``) takes the whole list of items, each a mapping of its
    ``items`` fields (an item with its ``id`` keeps it), or one mapping: a new item, or
    with ``id`` the changes to that item."""

    name: str
    type: str
    label: Text
    required: bool
    help: Text | None = None
    choices: list[Choice] | None = None
    multiple: bool = False
    min: float | None = None
    max: float | None = None
    max_length: int | None = None
    # a field type from a plugin: the JSON schema of the value to send (e.g. a survey's topics)
    input_schema: dict[str, Any] | None = None
    # a list field: the fields of each item, and how many items it takes
    items: list[ItemField] | None = None
    min_items: int | None = None
    max_items: int | None = None


class ActionOut(msgspec.Struct):
    """An action of a step: where it leads and the form it asks."""

    name: str
    label: Text
    to: str | None
    form: list[FormField]


class StepOut(msgspec.Struct):
    """A step of a procedure: who acts there, whether it ends the case, its actions."""

    key: str
    label: Text
    roles: list[str]
    final: bool
    actions: list[ActionOut]


class RoleOut(msgspec.Struct):
    """A role of a procedure; ``mine``: whether I hold it in my company."""

    key: str
    label: Text
    mine: bool


class ProcedureOut(msgspec.Struct):
    """A procedure as my company runs it: roles, steps, and the opening form."""

    key: str
    title: Text
    version: int
    start: str
    roles: list[RoleOut]
    open_roles: list[str]
    open_form: list[FormField]
    steps: list[StepOut]


class CaseOut(msgspec.Struct):
    """A case: where it stands, its fields, who it waits on, and its version."""

    id: int
    number: str
    procedure: str
    procedure_version: int
    status: str
    step: str
    step_label: Text
    fields: dict[str, Any]
    assignees: list[str]
    version: int
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    closed_at: dt.datetime | None
    next_due_at: dt.datetime | None  # the earliest running deadline (GET …/deadlines explains it)


class CaseList(msgspec.Struct):
    """One page of cases, with the total that matched.

    Matches are counted up to 10,000; beyond that ``total`` is 10,000 and
    ``total_exact`` false (counting a company's whole history on every page would cost
    more with every year of it). ``next`` is where the following page starts: pass it as
    ``after`` (null on the last page); ``previous`` is where the page before ends: pass it
    as ``before`` (null on the first page). Unlike an offset, a cursor costs the same on
    every page and neither repeats nor skips a case when others are opened or closed
    meanwhile.
    """

    items: list[CaseOut]
    total: int
    limit: int
    offset: int
    total_exact: bool = True
    next: str | None = None
    previous: str | None = None


class OpenCase(msgspec.Struct, forbid_unknown_fields=True):
    """Open a case of ``procedure`` with the opening form's ``fields``."""

    procedure: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    fields: dict[str, Any] = {}


class ActIn(msgspec.Struct, forbid_unknown_fields=True):
    """Take an action: the action form's ``fields`` and the case version you saw."""

    expected_version: Annotated[int, msgspec.Meta(ge=1)]
    fields: dict[str, Any] = {}


class ActOut(msgspec.Struct):
    """The case after opening or acting, the rules that fired and the cases they opened."""

    case: CaseOut
    fired: list[str]
    linked: list[int]


class Pause(msgspec.Struct):
    """A time a deadline's clock stood still (``to`` is null while it still does)."""

    start: dt.datetime = msgspec.field(name="from")
    end: dt.datetime | None = msgspec.field(name="to")


class DeadlineOut(msgspec.Struct):
    """One SLA of a case, explained: why it started, the target, pauses, what was counted."""

    id: str
    label: str
    source: str | None
    state: str  # pending | running | warned | paused | met | breached
    started_at: dt.datetime | None
    start_reason: str
    target: str | None
    target_reason: str
    due_at: dt.datetime | None
    warn_at: dt.datetime | None
    stopped_at: dt.datetime | None
    stop_reason: str
    pauses: list[Pause]
    counted_seconds: int  # business time counted so far, in the target's measure
    measure: str  # "working time" or "elapsed"
    extension: dict[str, Any] | None
    skipped_days: list[str]  # days off between start and due, with the reason (holiday, weekend…)
    counted_days: list[str]  # weekend days that counted: make-up working days (调休), company days
    warnings: list[str]


class JournalEntry(msgspec.Struct):
    """One entry of a case's journal: who did what and when, with the facts rules saw."""

    seq: int
    at: dt.datetime
    actor: str
    kind: str
    action: str | None
    rule_id: str | None
    procedure_version: int | None
    data: dict[str, Any]
    facts: dict[str, Any] | None


def form(proc: CompiledProcedure, names: list[str], required: list[str]) -> list[FormField]:
    out = []
    for name in names:
        f: FieldDef = proc.pack.fields[name]
        choices = None
        if f.choices:
            choices = [Choice(k, Text(v.zh_CN, v.en)) for k, v in f.choices.items()]
        label = text(f.label)
        kind = f.plugin_kind
        out.append(
            FormField(
                name,
                f.type,
                label,
                name in required,
                text(f.help),
                choices,
                f.multiple,
                f.min,
                f.max,
                f.max_length,
                kind.json_schema(f) if kind else None,
                _item_fields(f),
                f.min_items,
                f.max_items,
            )
        )
    return out


def _choices(f: FieldDef) -> list[Choice] | None:
    if not f.choices:
        return None
    return [Choice(k, Text(v.zh_CN, v.en)) for k, v in f.choices.items()]


def _item_fields(f: FieldDef) -> list[ItemField] | None:
    if f.type != "list" or not f.of:
        return None
    return [
        ItemField(
            name,
            sub.type,
            text(sub.label),
            name in f.require,
            _choices(sub),
            sub.min,
            sub.max,
            sub.max_length,
        )
        for name, sub in f.of.items()
    ]


def action_out(proc: CompiledProcedure, a: ActionView) -> ActionOut:
    return ActionOut(
        a.name,
        Text(a.label.get("zh-CN") or a.name, a.label.get("en")),
        a.to,
        form(proc, a.ask, a.require),
    )


def case_out(view: CaseView, proc: CompiledProcedure) -> CaseOut:
    step_label = text(proc.step(view.step).label)
    return CaseOut(
        view.id,
        view.number,
        view.procedure,
        view.procedure_version,
        view.status,
        view.step,
        step_label,
        view.fields,
        view.assignees,
        view.version,
        view.created_by,
        view.created_at,
        view.updated_at,
        view.closed_at,
        view.next_due_at,
    )


class Problem(msgspec.Struct):
    """An RFC 9457 problem: every error answer of the API."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    errors: dict[str, Any] | None = None
    current_version: int | None = None
    rule: str | None = None
    roles: list[str] | None = None
    step: str | None = None


class ReportInfo(msgspec.Struct):
    """A report, by name: a plugin's (``plugin``) or a procedure's (``procedure``)."""

    name: str
    title: str
    plugin: str
    procedure: str | None = None


class ReportOut(msgspec.Struct):
    """A report's table: ``columns`` and one list per row, in column order."""

    name: str
    columns: list[str]
    rows: list[list[Any]]
    notes: list[str]
