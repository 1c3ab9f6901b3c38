"""The spec side: what a procedure pack and a company config may say.

These pydantic models are the schema of ``rules/<pack>/procedure.yaml`` and
``config/<company>.yaml``. They only check shape; cross-references (a step naming an
unknown role, a rule naming an unknown field) are checked by :mod:`core.spec.loading`, which
also maps every problem back to file:line:col. The instance side (cases, journal,
timers) lives in :mod:`core.storage`; the two never mix.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from core.time.calendars import CalendarDef
from core.time.durations import Duration, ParamDuration, duration_or_param

#: a duration, or ``param.<name>``: a duration parameter the company may set
DurationIn = Annotated[
    Duration | ParamDuration, PlainValidator(duration_or_param), PlainSerializer(str)
]

KEY_RE = r"^[a-z][a-z0-9_]*$"
PACK_RE = r"^[a-z][a-z0-9-]*$"
Key = Annotated[str, Field(pattern=KEY_RE)]
#: what a signature covers: a field, or one field of a list's items (``actions.owner``)
COVER_RE = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?$"
CoverRef = Annotated[str, Field(pattern=COVER_RE)]
MIME_RE = r"^[a-z0-9][a-z0-9.+-]*/(\*|[a-z0-9][a-z0-9.+-]*)$"
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2}
_SIZE_UNITS["gib"] = 1024**3


def _byte_size(value: Any) -> Any:
    """``10MB``, ``500 KiB`` or a number of bytes, as a number of bytes."""
    if isinstance(value, bool):
        raise ValueError("a size such as 10MB, 500KB or a number of bytes")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m:
            return int(float(m[1]) * _SIZE_UNITS[(m[2] or "B").lower()])
    raise ValueError(f"'{value}' is not a size such as 10MB, 500KB or a number of bytes")


#: a number of bytes, written ``10MB`` / ``500KiB`` / ``2048``
ByteSize = Annotated[int, BeforeValidator(_byte_size), Field(gt=0, le=10 * 1024**3)]
PackKey = Annotated[str, Field(pattern=PACK_RE)]

FIELD_KINDS = (
    "text",
    "longtext",
    "number",
    "integer",
    "money",
    "boolean",
    "date",
    "datetime",
    "choice",
    "phone",
    "email",
    "person",
    "attachment",
    "list",
)

#: facts every rule may use besides the declared fields
SYSTEM_FACTS = ("event", "action", "step", "from_step")
#: values of the ``event`` fact: rules see "opened" and "action", guards see "guard"
EVENTS = ("opened", "action", "guard")


class Strict(BaseModel):
    """Base of the spec models: unknown keys are errors and values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Label(Strict):
    """A text in each language; zh-CN is the source language of every seed."""

    zh_CN: str = Field(alias="zh-CN")
    en: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def text(self, locale: str = "zh-CN") -> str:
        return self.en if locale.startswith("en") and self.en else self.zh_CN


def _label(value: Any) -> Any:
    # A bare string is the zh-CN label: most seeds are Chinese only.
    return {"zh-CN": value} if isinstance(value, str) else value


#: a label that may also be written as a bare string (the zh-CN text)
LabelIn = Annotated[Label, BeforeValidator(_label)]


def _plugin_kinds(info: ValidationInfo) -> Mapping[str, Any]:
    """The plugins' field types handed in as validation context (``Extensions``)."""
    ctx = info.context
    return ctx.get("field_kinds", {}) if isinstance(ctx, Mapping) else {}


def _one_or_many(value: Any) -> Any:
    # ``role: agent`` is shorthand for ``role: [agent]``
    return [value] if isinstance(value, str) else value


#: one role or a list of roles
RolesIn = Annotated[list[Key], BeforeValidator(_one_or_many)]


class FieldDef(Strict):
    """An entry of the pack's ``fields:``: a form field, its type, label and limits."""

    # a built-in kind (FIELD_KINDS) or one a plugin registers (kefu_field_types)
    type: str
    label: LabelIn
    help: LabelIn | None = None
    choices: dict[str, LabelIn] | None = None
    min: float | None = None
    max: float | None = None
    max_length: int | None = Field(default=None, gt=0)
    multiple: bool = False
    options: dict[str, Any] = {}  # a plugin field type's own settings, checked by that type
    # a list field (a repeating group): the sub-fields of each item, how many items, and
    # the sub-fields every item must have
    of: dict[Key, FieldDef] | None = None
    min_items: int | None = Field(default=None, ge=0)
    max_items: int | None = Field(default=None, ge=1, le=1000)
    require: list[Key] = []
    # an attachment field: the largest file ("10MB", "500KB" or bytes), how many files
    # (``multiple: true``) and the types their content may have (sniffed, never taken from
    # the file name): MIME types or ``image/*``
    max_size: ByteSize | None = None
    max_files: int | None = Field(default=None, ge=1, le=100)  # with multiple: true
    # a number the reports read as a score: ``satisfaction`` (the satisfaction-scores
    # report averages every such field, whatever it is called)
    score: Literal["satisfaction"] | None = None
    accept: list[Annotated[str, Field(pattern=MIME_RE)]] | None = None

    # the plugin field type behind ``type`` (None for a built-in), resolved at validation
    _plugin: Any = PrivateAttr(default=None)

    @property
    def plugin_kind(self) -> Any:
        """The plugin's field type (``core.spec.fields.FieldKind``), None for a built-in."""
        # read from pydantic's store of private attributes: ``self._plugin`` goes through
        # BaseModel.__getattr__, a cost on every value of every form and fact
        private = self.__pydantic_private__
        return private.get("_plugin") if private else None

    @field_validator("type")
    @classmethod
    def _kind(cls, v: str, info: ValidationInfo) -> str:
        if v in FIELD_KINDS:
            return v
        plugin_kinds = _plugin_kinds(info)
        if v in plugin_kinds:
            return v
        known = [*FIELD_KINDS, *sorted(plugin_kinds)]
        guess = difflib.get_close_matches(v, known, n=1)
        raise ValueError(
            f"unknown field type '{v}': one of {', '.join(known)}"
            + (f" (did you mean '{guess[0]}'?)" if guess else "")
        )

    @model_validator(mode="after")
    def _options(self, info: ValidationInfo) -> FieldDef:
        kind = _plugin_kinds(info).get(self.type)
        if kind is None:
            if self.options:
                raise ValueError(
                    f"options: is for field types from plugins; '{self.type}' takes none"
                )
            return self
        self._plugin = kind
        model = getattr(kind, "options_model", None)
        if model is not None:
            model.model_validate(self.options)
        return self

    @field_validator("choices", mode="before")
    @classmethod
    def _choices(cls, v: Any) -> Any:
        if isinstance(v, list):
            return {str(c): str(c) for c in v}
        return v


class Branch(Strict):
    """One branch of an action's ``to:``: the first whose ``when`` holds gives the step;
    the last, without ``when``, is the default."""

    when: str | None = None
    to: Key


class ActionDef(Strict):
    """An action of a step: who may do it, the form it asks, and the step it leads to."""

    label: LabelIn
    to: Key | list[Branch] | None = None
    role: RolesIn | None = None
    ask: list[Key] = []
    require: list[Key] = []
    guard: str | None = None
    # four-eyes: the actor may not be the person in these person fields, nor whoever
    # took these earlier actions on the case
    not_by: list[Key] = []
    # fields required only while a condition holds (on the case as the form leaves it)
    require_when: dict[Key, str] = {}
    # the action signs the case: the name of one of the pack's signatures:
    sign: Key | None = None
    source: str | None = None

    @property
    def fixed_to(self) -> str | None:
        """The step the action leads to, when that does not depend on the case (no
        branches); None also when it stays in its step."""
        return self.to if isinstance(self.to, str) else None


class SignatureDef(Strict):
    """An entry of the pack's ``signatures:``: who signs which fields, alone or together.

    A signature vouches for the values of ``covers`` at the moment of signing (their hash
    is kept); changing one of them later voids it. ``list.field`` covers only that field
    of a list's items (with the items' ids): an approved plan whose items are ticked off
    later. ``need: all`` is a countersignature (会签): one valid signature per role of
    ``roles``, in any order; ``need: any``: one of them is enough. ``distinct``: nobody
    signs twice (one person, one signature)."""

    label: LabelIn
    source: str | None = None
    covers: list[CoverRef] = Field(min_length=1)
    roles: RolesIn = Field(min_length=1)
    need: Literal["any", "all"] = "any"
    distinct: bool = False


class DeriveDef(Strict):
    """An entry of the pack's ``derive:``: a value computed from the case before rules run."""

    value: str
    label: LabelIn | None = None
    source: str | None = None


class EventRef(Strict):
    """A moment in a case's life: entering a step, an action done, or a date field's value."""

    step: Key | None = None
    steps: list[Key] | None = None
    action: Key | None = None
    field: Key | None = None

    @model_validator(mode="after")
    def _one(self) -> EventRef:
        given = [k for k in ("step", "steps", "action", "field") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"say exactly one of step, steps, action, field (got {', '.join(given) or 'none'})"
            )
        return self


Event = Literal["opened", "closed"] | EventRef


class PromisedTarget(Strict):
    """The due date is a date/time field staff fill in, no later than ``max`` after the start.

    ``if_empty`` says what a case whose field is still empty gets: ``max`` (due ``max``
    after the start) or ``none`` (no deadline until the date is filled in) — a choice the
    pack must make, since a procedure's text rarely says."""

    field: Key
    max: DurationIn
    if_empty: Literal["max", "none"]


class TargetRow(Strict):
    """One row of a target table: the first row whose ``when`` holds gives the target, a
    duration or a promised date."""

    when: str | None = None
    target: DurationIn | None = None
    promised: PromisedTarget | None = None

    @model_validator(mode="after")
    def _one(self) -> TargetRow:
        if (self.target is None) == (self.promised is None):
            raise ValueError("a row has either target: (a duration) or promised: (a date field)")
        return self


class PauseDef(Strict):
    """The clock stops while the case is at one of ``steps`` or while the condition holds."""

    steps: list[Key] = []
    while_: str | None = Field(default=None, alias="while")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ExtensionDef(Strict):
    """Doing ``action`` replaces the target with ``target``; the reason field is required."""

    action: Key
    target: DurationIn
    reason: Key


def _warning(v: Any) -> Any:
    if v is None or not isinstance(v, str):
        return v
    text = v.strip()
    if text.endswith("%"):
        try:
            pct = float(text[:-1])
        except ValueError:
            raise ValueError(f"'{v}' is not a percentage such as 80%") from None
        if not 0 < pct < 100:
            raise ValueError("a warning percentage is between 0% and 100% (exclusive)")
        return text
    Duration.parse(text)  # raises with the accepted forms
    return text


class StepSlaDef(Strict):
    """``sla:`` of a step: starts when the case enters the step, stops when it leaves it."""

    label: LabelIn | None = None
    source: str | None = None
    target: DurationIn | list[TargetRow] | PromisedTarget
    # the SLA applies only to cases for which this condition holds (on their current fields)
    when: str | None = None
    warning: str | None = None
    pause: PauseDef | None = None
    extension: ExtensionDef | None = None
    on_warning: list[dict[str, Any]] = []
    on_breach: list[dict[str, Any]] = []

    @field_validator("warning", mode="before")
    @classmethod
    def _warn(cls, v: Any) -> Any:
        return _warning(v)


class SlaDef(StepSlaDef):
    """An entry of the pack's ``slas:``: a deadline between two moments of the case."""

    label: LabelIn  # required here
    start: Event = "opened"
    stop: Event = "closed"


class TimerDef(Strict):
    """An entry of the pack's ``timers:``: effects ``after`` a while ``from`` an event."""

    label: LabelIn | None = None
    source: str | None = None
    # when the timer is due: ``after`` the event, or ``before`` it (a moment in a field)
    after: DurationIn | None = None
    before: DurationIn | None = None
    from_: Event = Field(default="opened", alias="from")
    # the timer runs only for cases for which this condition holds (planned and fired)
    when: str | None = None
    while_: PauseDef | None = Field(default=None, alias="while")
    then: list[dict[str, Any]] = Field(min_length=1)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _negative(cls, data: Any) -> Any:
        # a negative offset: ``after: -15min`` is ``before: 15min``
        after = data.get("after") if isinstance(data, dict) else None
        if isinstance(after, str) and after.strip().startswith("-") and "before" not in data:
            data = {k: v for k, v in data.items() if k != "after"}
            data["before"] = after.strip()[1:].strip()
        return data

    @model_validator(mode="after")
    def _offset(self) -> TimerDef:
        if (self.after is None) == (self.before is None):
            raise ValueError("say when the timer is due: after: or before: (one of them)")
        return self


Frequency = Literal["day", "week", "month", "quarter", "year"]
_HHMM = r"^([01]?[0-9]|2[0-3]):[0-5][0-9]$"


class SchedulePhase(Strict):
    """One phase of a per-case schedule: ``{every: month, count: 12}`` then ``{every: quarter}``."""

    every: Frequency
    count: int | None = Field(default=None, ge=1, le=1000)


class ScheduleDef(Strict):
    """An entry of the pack's ``schedules:``: something that recurs.

    Without ``from`` it is the company's calendar schedule and opens a case of this pack
    (``open:``) at each occurrence; with ``from`` it runs per case, relative to an event of
    the case, applying ``then:`` effects until the case closes.
    """

    label: LabelIn
    source: str | None = None
    every: Frequency | list[SchedulePhase]
    on: int | str | None = None
    at: Annotated[str, Field(pattern=_HHMM)] = "09:00"
    from_: Event | None = Field(default=None, alias="from")
    open: dict[str, Any] | None = None
    then: list[dict[str, Any]] = []
    # per-case schedules: an occurrence applies ``then`` only while the case is at one of
    # ``while.steps`` / the condition holds, and when ``when`` holds (else it is skipped)
    when: str | None = None
    while_: PauseDef | None = Field(default=None, alias="while")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _shape(self) -> ScheduleDef:
        if self.from_ is None:
            if isinstance(self.every, list):
                raise ValueError(
                    "phases (every: [...]) need from: an event of the case to count from"
                )
            if self.then:
                raise ValueError(
                    "a company schedule (no from:) opens cases with open:, it has no then:"
                )
            if self.when is not None or self.while_ is not None:
                raise ValueError(
                    "when: and while: are for per-case schedules (with from:): a company "
                    "schedule has no case to test"
                )
        elif self.open is not None:
            raise ValueError(
                "a per-case schedule (with from:) acts on its case with then:, not open:"
            )
        elif not self.then:
            raise ValueError("a per-case schedule needs then: effects")
        return self


class ScheduleOverride(Strict):
    """A company's change to a pack's schedule: switch it off, move its day or time."""

    enabled: bool = True
    on: int | str | None = None
    at: Annotated[str | None, Field(pattern=_HHMM)] = None


class WaitDef(Strict):
    """``wait_for:`` of a step: the case waits here for the cases it opened with
    ``open_case: {link: …}``; when the last of them closes it moves ``to`` a step."""

    link: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    to: Key


class StepDef(Strict):
    """An entry of the pack's ``steps:``: who acts there, its actions, its own SLA."""

    label: LabelIn
    role: RolesIn = []
    final: bool = False
    actions: dict[Key, ActionDef] = {}
    # actions of the pack's actions: (shared by several steps) offered here too
    use: list[Key] = []
    sla: StepSlaDef | None = None
    wait_for: WaitDef | None = None
    source: str | None = None


class OpenDef(Strict):
    """Who may open a case and what the opening form asks."""

    role: RolesIn
    ask: list[Key] = []
    require: list[Key] = []
    require_when: dict[Key, str] = {}


class RoleDef(Strict):
    """An entry of the pack's ``roles:`` (who holds it is the company's choice)."""

    label: LabelIn


class RuleDef(Strict):
    """An entry of the pack's ``rules:``: effects applied when the condition holds."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
    when: str | None = None
    then: list[dict[str, Any]] = Field(min_length=1)
    source: str | None = None
    description: str | None = None


_KEEP_RE = re.compile(r"^\s*(\d{1,4})\s*(day|days|month|months|year|years|天|个月|年)\s*$")


def _keep(value: Any) -> Any:
    if value == "permanent" or value == "永久":
        return "permanent"
    if isinstance(value, str) and _KEEP_RE.match(value):
        return value.strip()
    raise ValueError(f"'{value}' is not a period such as 1 year, 18 months, 90 days or permanent")


#: how long something is kept: ``1 year``, ``18 months``, ``90 days`` or ``permanent``
Keep = Annotated[str, BeforeValidator(_keep)]


def keep_delta(keep: str) -> tuple[int, str] | None:
    """``(n, "days"|"months"|"years")`` of a :data:`Keep`; None for ``permanent``."""
    m = _KEEP_RE.match(keep)
    if m is None:
        return None
    unit = {"天": "days", "个月": "months", "年": "years"}.get(m[2], m[2].rstrip("s") + "s")
    return int(m[1]), unit


class RetainDef(Strict):
    """The pack's ``retain:``: how long a closed case keeps the personal data of
    ``anonymise``; a case whose boolean field ``hold`` is true (legal hold) is never
    touched."""

    keep: Keep
    anonymise: list[Key] = Field(min_length=1)
    hold: Key | None = None
    source: str | None = None


class RecordDef(Strict):
    """An entry of the pack's ``records:``: a printed form made of case fields."""

    title: LabelIn
    form_number: str | None = None
    revision: str | None = None
    fields: list[Key]
    # the signatures printed on it (default: those covering one of its fields)
    signatures: list[Key] | None = None
    # print the journal entries that produced the case (who did what, when)
    journal: bool = True
    # how long the case behind this record must be kept at least (retain: waits for it)
    retain: Keep | None = None
    source: str | None = None


class ActionCount(Strict):
    """``count: {action: name}``: how many times the action was taken in the period."""

    action: Key


class ReportColumnDef(Strict):
    """A column of a pack report: what it counts, and of which cases (``when``)."""

    label: LabelIn
    # opened / closed in the period, open at its end, or an action taken in it
    count: Literal["opened", "closed", "open"] | ActionCount
    # only the cases for which this condition holds, on their fields as they are now
    when: str | None = None


class ReportDef(Strict):
    """An entry of the pack's ``reports:``: counts of its cases per period (a month, a
    quarter, a year), optionally one row per value of a choice or boolean field."""

    title: LabelIn
    source: str | None = None
    form_number: str | None = None
    per: Literal["month", "quarter", "year"] = "month"
    by: Key | None = None
    columns: dict[Key, ReportColumnDef] = Field(min_length=1)


class ParameterDef(Strict):
    """An entry of the pack's ``parameters:``: a value companies may set (``param.x``)."""

    type: Literal["number", "integer", "text", "boolean", "duration"]
    default: Any
    label: LabelIn | None = None


TEMPLATE_KEY = r"^[a-z0-9][a-z0-9_.-]*$"


class TemplateDef(Strict):
    """A message text for ``notify: {template: name}`` (Jinja, see core.spec.templates)."""

    subject: LabelIn | None = None
    body: LabelIn
    source: str | None = None


class PackDef(Strict):
    """``rules/<pack>/procedure.yaml``."""

    kefu: Literal[1]
    procedure: PackKey
    title: LabelIn
    source: str | None = None
    parameters: dict[Key, ParameterDef] = {}
    roles: dict[Key, RoleDef] = Field(min_length=1)
    fields: dict[Key, FieldDef] = {}
    derive: dict[Key, DeriveDef] = {}
    open: OpenDef
    start: Key
    steps: dict[Key, StepDef] = Field(min_length=1)
    # actions several steps offer (each step names them under use:)
    actions: dict[Key, ActionDef] = {}
    rules: list[RuleDef] = []
    signatures: dict[Key, SignatureDef] = {}
    records: dict[Key, RecordDef] = {}
    reports: dict[Key, ReportDef] = {}
    retain: RetainDef | None = None
    slas: dict[Key, SlaDef] = {}
    timers: dict[Key, TimerDef] = {}
    schedules: dict[Key, ScheduleDef] = {}
    templates: dict[Annotated[str, Field(pattern=TEMPLATE_KEY)], TemplateDef] = {}

    @model_validator(mode="after")
    def _shared_actions(self) -> PackDef:
        """A step's ``use:`` brings the pack's shared actions into its ``actions``
        (unknown names and clashes are reported by the loader, K135)."""
        if not any(st.use for st in self.steps.values()):
            return self
        steps = {
            name: st.model_copy(
                update={
                    "actions": {
                        **{u: self.actions[u] for u in st.use if u in self.actions},
                        **st.actions,
                    }
                }
            )
            if st.use
            else st
            for name, st in self.steps.items()
        }
        return self.model_copy(update={"steps": steps})


# -- company config ---------------------------------------------------------------------


class Holders(Strict):
    """Who holds a role: whole departments and/or named people."""

    departments: list[Key] = []
    people: list[Key] = []


class DepartmentDef(Strict):
    """An entry of the company's ``departments:``."""

    label: LabelIn


class PersonDef(Strict):
    """An entry of the company's ``people:``: contact, departments, roles, dispatch data."""

    name: str
    departments: list[Key] = []
    roles: list[Key] = []
    email: str | None = None
    phone: str | None = None
    # for the dispatch effect: what they can repair, where they work, where they are based
    skills: list[Annotated[str, Field(min_length=1, max_length=64)]] = []
    region: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    location: (
        tuple[Annotated[float, Field(ge=-90, le=90)], Annotated[float, Field(ge=-180, le=180)]]
        | None
    ) = None


NUMBERING_RE = re.compile(r"\{(yyyy|yy|mm|dd|seq(?::0?\d+)?)\}")


class PortalSettings(Strict):
    """``portal:`` of a company's procedure: what customers may do without an account.

    ``intake``: the public intake form (the opening form, less the ``fixed`` values the
    portal sets itself, e.g. ``channel: web``) opens cases as ``role``, which must be one of
    the pack's opening roles. ``contact``: the fields a tracking-number lookup compares
    with what the customer types (their phone or e-mail)."""

    intake: bool = False
    role: Key = "customer"
    fixed: dict[Key, Any] = {}
    contact: list[Key] = []


class ProcedureSettings(Strict):
    """How a company runs one pack: on or off, parameters, numbering, role holders."""

    enabled: bool = True
    parameters: dict[Key, Any] = {}
    numbering: str = "{procedure}-{yyyy}{mm}{dd}-{seq:04}"
    number_scheme: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")] = "pattern"
    roles: dict[Key, Holders] = {}
    schedules: dict[Key, ScheduleOverride] = {}
    portal: PortalSettings | None = None


class PluginSettings(Strict):
    """``plugins: {name: {enabled: false}}`` / ``{name: {settings: {...}}}`` in a company config."""

    enabled: bool = True
    settings: dict[str, Any] = {}


class AttachmentSettings(Strict):
    """``attachments:`` of a company: the store its uploads go to and the store's settings."""

    store: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")] = "folder"
    settings: dict[str, Any] = {}
    # an upload no case refers to after this long is deleted by the worker
    orphan_hours: int = Field(default=24, ge=1, le=24 * 365)


class RecordSettings(Strict):
    """``records:`` of a company: the header printed on every record, a folder of
    templates (``<procedure>/<record>.html``) replacing the packs' own, and the company's
    form numbers and revisions by ``<procedure>.<record>``."""

    header: LabelIn | None = None
    templates: str | None = None
    # the company's own form numbers and revisions: ``{repair-desk.repair_order: BX-JL-01}``
    form_numbers: dict[
        Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*\.[a-z][a-z0-9_]*$")], str
    ] = {}
    revisions: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*\.[a-z][a-z0-9_]*$")], str] = {}


class CompanyDef(Strict):
    """``config/<company>.yaml``."""

    kefu: Literal[1]
    company: PackKey
    name: LabelIn
    timezone: str = "Asia/Shanghai"
    locale: Literal["zh-CN", "en"] = "zh-CN"
    rules_engine: (
        Literal["durable", "durable-isolated", "durable-inprocess", "reference"] | None
    ) = None
    departments: dict[Key, DepartmentDef] = {}
    roles: dict[Key, Holders] = {}
    people: dict[Key, PersonDef] = {}
    procedures: dict[PackKey, ProcedureSettings] = {}
    calendar: CalendarDef = CalendarDef()
    # settings handed to each notification channel for this company's messages
    # (e.g. ``email: {host: smtp.example.com, port: 587}``); the channel validates them
    channels: dict[Key, dict[str, Any]] = {}
    # per plugin (entry-point name): enable/disable for this company, and its settings
    plugins: dict[
        Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")], PluginSettings
    ] = {}
    # message texts replacing the packs' (same keys as the packs' templates:)
    templates: dict[Annotated[str, Field(pattern=TEMPLATE_KEY)], TemplateDef] = {}
    # where uploaded files go: a store (``folder`` built in, others from plugins)
    attachments: AttachmentSettings = AttachmentSettings()
    # printed records: the header line, and templates replacing the packs'
    records: RecordSettings = RecordSettings()
