"""Pack scenarios: YAML tests of a procedure pack, run against a real case service.

A scenario lives next to its pack, ``rules/<pack>/scenarios/<name>.yaml``, and walks
cases through the pack step by step, checking what happens::

    scenario: 报修 — from intake to closed
    source: "A 一.1 – 四.2"
    people:
      wang: {roles: [agent]}
      li: {roles: [engineer]}
    steps:
      - at: 2026-10-08 09:00
      - open:
        as: wang
        fields: {channel: phone, customer_name: 张三, phone: "13912345678", symptom: 不制冷}
        expect: {step: intake}
      - act: {as: li, action: verify, fields: {in_scope: true}}
        expect: {error: not-allowed}

The full format, with every key, is in docs/scenarios.md. In short:

* ``open`` / ``act`` run one call of the case service; ``at`` sets the test clock (in
  the company's time zone); ``expect`` checks the case, the outbox, the journal and the
  actions a person is offered. An ``expect:`` in the *same list item* as an ``open`` or
  ``act`` belongs to it: only there may it say ``error:`` or ``refused:`` — an action
  that fails without one fails the scenario.
* Every problem names ``file:line``: format problems come all at once before anything
  runs (:class:`ScenarioInvalid`, with line and column and a code ``S1xx``); a run stops
  at the first step whose expectation is not met (:class:`ScenarioFailed`), listing every
  mismatch of that expectation with expected and found values.

:func:`run_scenario` runs one file on a fresh database (a throwaway SQLite file unless
told otherwise) with a :class:`~core.clock.TestClock`; :func:`run_paths` is ``kefu
test``: every scenario under the given packs on both rule evaluators.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import importlib.util
import re
import shutil
import tempfile
import time
import traceback
import uuid
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from sqlalchemy import create_engine, select, text

from core.cases import timers
from core.cases.service import ActResult, CaseService, CaseView
from core.clock import TestClock
from core.errors import KefuError
from core.rules.evaluator import Evaluator, default_kind, make_evaluator
from core.rules.expr import did_you_mean
from core.runtime.bootstrap import build_service, create_config_people
from core.runtime.plugins import PluginError, installed
from core.runtime.worker import run_until
from core.spec.catalog import Catalog, pack_dirs
from core.spec.definitions import KEY_RE, CompanyDef, PersonDef
from core.spec.diagnostics import Diagnostic, Diagnostics, Loc, YamlDoc
from core.spec.effects import EffectType
from core.spec.extensions import Extensions
from core.spec.fields import FieldValueError, coerce
from core.spec.loading import (
    LoadedCompany,
    LoadedPack,
    effect_registry,
    load_company,
    load_pack,
    param_fits,
)
from core.spec.procedures import CompiledProcedure, compile_procedure
from core.storage import schema as t
from core.storage.db import Database
from core.storage.migrate import upgrade
from core.time.durations import Duration, DurationError

SCENARIO_DIR = "scenarios"
ENGINES = ("durable", "reference")
#: the company a scenario runs in when it names no config file
BUILTIN_COMPANY = "scenario"
BUILTIN_TIMEZONE = "Asia/Shanghai"
#: error codes ``expect: {error: …}`` may name (a rule's refusal is ``refused:``)
ERROR_CODES = ("not-allowed", "invalid-input", "stale-version", "action-unavailable", "not-found")
ASSIGNEE_RE = re.compile(r"^(role|person|department):[a-z][a-z0-9_.-]*$")

_TOP_KEYS = ("scenario", "source", "company", "people", "parameters", "steps")
_STEP_KINDS = ("open", "act", "at", "after", "expect")
_ITEM_EXTRA = ("source", "note")
_OPEN_KEYS = ("as", "procedure", "fields", "name")
_ACT_KEYS = ("as", "action", "fields", "version", "case")
_PERSON_KEYS = ("name", "departments", "roles", "email", "phone", "skills", "region")
_EXPECT_KEYS = (
    "case",
    "step",
    "status",
    "fields",
    "assignees",
    "fired",
    "outbox",
    "journal",
    "actions",
    "linked",
    "refused",
    "error",
    "deadlines",
    "cases",
    "timers",
    "next_due",
)
TIMER_KINDS = ("sla.warn", "sla.breach", "pack.timer", "schedule")
_DEADLINE_KEYS = ("state", "due", "warn", "target", "started", "paused")
DEADLINE_STATES = ("pending", "running", "warned", "paused", "met", "breached")
_OUTBOX_KEYS = ("to", "template", "channel", "fields", "text")
_JOURNAL_KEYS = ("kind", "rule", "action", "actor", "facts", "items")
_ACTIONS_KEYS = ("as", "include", "exclude", "only")
_LINKED_KEYS = ("procedure", "link", "rule", "step", "status", "name")


# -- errors -------------------------------------------------------------------------------
class ScenarioError(Exception):
    """A scenario could not be run, or did not do what it expected."""


class ScenarioInvalid(ScenarioError):
    """The scenario file (or the pack or company it uses) has problems; nothing ran."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(d.format() for d in self.diagnostics))


class ScenarioFailed(ScenarioError):
    """A step failed or an expectation was not met; ``where`` is ``file:line``."""

    def __init__(self, where: str, message: str, details: Sequence[str] = ()) -> None:
        self.where = where
        self.message = message
        self.details = list(details)
        lines = [f"{where}: {message}"] + [
            f"    {d}" if d.startswith("hint:") else d for d in self.details
        ]
        super().__init__("\n".join(lines))


# -- the parsed form ----------------------------------------------------------------------
@dataclass
class OpenStep:
    who: str
    procedure: str | None
    fields: dict[str, Any]
    name: str | None


@dataclass
class CaseSelector:
    """``case: {procedure: x, nth: 2, fields: {…}, created_by: system}``: a case found by
    what it is, in the order cases were opened (1 the first, -1 the last) — also a case a
    schedule or a rule opened, which no ``open:`` step named."""

    procedure: str | None = None
    nth: int = 1
    fields: dict[str, Any] = field(default_factory=dict)
    created_by: str | None = None

    def describe(self) -> str:
        parts = [
            f"{k}: {v}"
            for k, v in (("procedure", self.procedure), ("created_by", self.created_by))
            if v
        ]
        parts += [f"{k} = {_show(v)}" for k, v in self.fields.items()]
        return f"case #{self.nth} with " + (", ".join(parts) or "any procedure")


@dataclass
class ActStep:
    who: str
    action: str
    fields: dict[str, Any]
    version: int | None
    case: str | CaseSelector | None


@dataclass
class AtStep:
    moment: dt.datetime  # naive: read in the company's time zone


@dataclass
class AfterStep:
    duration: Duration  # on the company's working calendar


@dataclass
class Expect:
    loc: Loc
    case: str | CaseSelector | None
    #: key -> (parsed value, location of the key)
    checks: dict[str, tuple[Any, Loc]]
    attached: bool


@dataclass
class Step:
    index: int
    loc: Loc
    kind: str  # open | act | at | after | expect
    body: OpenStep | ActStep | AtStep | AfterStep | None
    expect: Expect | None


@dataclass
class Scenario:
    path: Path
    doc: YamlDoc
    title: str
    pack: str
    rules_dir: Path
    company: str | None
    people: dict[str, PersonDef]
    parameters: dict[str, Any]
    steps: list[Step]
    #: problems found against the pack and the company (filled in by the runner)
    problems: list[Diagnostic] = field(default_factory=list)

    @property
    def display(self) -> str:
        return self.doc.display

    def where(self, loc: Loc) -> str:
        line, _ = self.doc.locate(loc, key=True)
        return f"{self.display}:{line}"


# -- loading --------------------------------------------------------------------------------
def load_scenario(path: Path, display_root: Path | None = None) -> Scenario:
    """Parse and check the format of a scenario file; raises :class:`ScenarioInvalid`.

    References to the pack (actions, rules, steps, fields, people) are checked by
    :func:`run_scenario`, once the pack and the company are loaded.
    """
    path = Path(path)
    doc = _ScenarioDoc(path, _display(path, display_root))
    diags = Diagnostics()
    loaded = doc.load(diags)
    # the YAML layer speaks in pack codes (K100 unreadable, K117 duplicate key)
    diags[:] = [dataclasses.replace(d, code={"K117": "S102"}.get(d.code, "S100")) for d in diags]
    if not loaded:
        raise ScenarioInvalid(diags)
    parser = _Parser(doc, diags)
    scenario = parser.scenario(path)
    if diags.errors or scenario is None:
        if scenario is not None:
            # the parts that parsed are checked against the pack too: every problem in one run
            with contextlib.suppress(ScenarioError):
                _setup(scenario, None)
            diags.extend(scenario.problems)
        raise ScenarioInvalid(sorted(diags, key=lambda d: (d.line, d.col)))
    return scenario


class _ScenarioDoc(YamlDoc):
    """A YamlDoc whose positions survive YAML merge keys (``<<: *verify``).

    ruamel keeps no position for a key that came in through a merge; such a key is
    located at the mapping that merged it (the step that wrote ``<<:``).
    """

    def locate(self, loc: Iterable[str | int], *, key: bool = False) -> tuple[int, int]:
        node: Any = self.root
        line, col = 1, 1
        parts = list(loc)
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            try:
                if isinstance(node, CommentedMap) and part in node:
                    ln, cl = node.lc.key(part) if key and last else node.lc.value(part)
                elif (
                    isinstance(node, CommentedSeq)
                    and isinstance(part, int)
                    and 0 <= part < len(node)
                ):
                    ln, cl = node.lc.item(part)
                else:
                    break
            except (KeyError, TypeError):  # merged in: keep the merging mapping's position
                if not (isinstance(node, CommentedMap) and part in node):
                    break
                node = node[part]
                continue
            line, col = ln + 1, cl + 1
            node = node[part]
        return line, col


def _display(path: Path, root: Path | None) -> str:
    try:
        return str(path.resolve().relative_to((root or Path.cwd()).resolve()))
    except ValueError:
        return str(path)


def _plain(node: Any) -> Any:
    """ruamel's round-trip values as plain Python (datetimes kept, timestamps made plain)."""
    if isinstance(node, CommentedMap):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, CommentedSeq):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, str):
        return str(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, dt.datetime):  # ruamel's TimeStamp keeps its offset in tzinfo
        return dt.datetime(
            node.year,
            node.month,
            node.day,
            node.hour,
            node.minute,
            node.second,
            node.microsecond,
            tzinfo=node.tzinfo,
        )
    return node


class _Parser:
    def __init__(self, doc: YamlDoc, diags: Diagnostics) -> None:
        self.doc = doc
        self.diags = diags

    # -- helpers ------------------------------------------------------------------------
    def err(
        self, loc: Loc, code: str, message: str, hint: str | None = None, key: bool = False
    ) -> None:
        self.diags.append(self.doc.diag(loc, code, message, hint, key=key))

    def value(self, loc: Loc) -> Any:
        return self.doc.value_at(loc)

    def mapping(self, loc: Loc, allowed: Sequence[str], what: str) -> CommentedMap | None:
        node = self.value(loc)
        if not isinstance(node, CommentedMap):
            self.err(
                loc,
                "S103",
                f"{what} must be a mapping of keys",
                "write {key: value, …} or one 'key: value' per line",
            )
            return None
        for k in node:
            if k not in allowed:
                guess = did_you_mean(str(k), allowed)
                self.err(
                    loc + (k,),
                    "S102",
                    f"unknown key '{k}'",
                    f"keys here: {', '.join(allowed)}"
                    + (f" (did you mean '{guess}'?)" if guess else ""),
                    key=True,
                )
        return node

    def text(self, loc: Loc, what: str, pattern: str | None = None) -> str | None:
        node = self.value(loc)
        if isinstance(node, bool) or not isinstance(node, str | int | float):
            self.err(loc, "S103", f"{what} must be a text")
            return None
        out = str(node)
        if pattern and not re.match(pattern, out):
            self.err(loc, "S103", f"{what} '{out}' is not a valid name")
            return None
        return out

    def names(self, loc: Loc, what: str) -> list[str] | None:
        node = self.value(loc)
        if isinstance(node, str):
            return [node]
        if not isinstance(node, CommentedSeq) or not all(isinstance(x, str) for x in node):
            self.err(
                loc, "S103", f"{what} must be a list of names", "write [a, b] or one '- a' per line"
            )
            return None
        return [str(x) for x in node]

    def fields(self, loc: Loc) -> dict[str, Any]:
        node = self.value(loc)
        if node is None:
            return {}
        if not isinstance(node, CommentedMap):
            self.err(loc, "S103", "fields must be a mapping of field: value")
            return {}
        return {str(k): _plain(v) for k, v in node.items()}

    # -- the file -------------------------------------------------------------------------
    def scenario(self, path: Path) -> Scenario | None:
        root = self.mapping((), _TOP_KEYS, "a scenario")
        if root is None:
            return None
        title = None
        if "scenario" not in root:
            self.err(
                (),
                "S101",
                "missing required key 'scenario'",
                "give the scenario a title: scenario: …",
            )
        else:
            title = self.text(("scenario",), "scenario")
        if "source" in root:
            self.text(("source",), "source")
        company = self.text(("company",), "company") if "company" in root else None
        people = self.people() if "people" in root else {}
        parameters: dict[str, Any] = {}
        if "parameters" in root:
            node = self.value(("parameters",))
            if isinstance(node, CommentedMap):
                parameters = {str(k): _plain(v) for k, v in node.items()}
            else:
                self.err(("parameters",), "S103", "parameters must be a mapping of name: value")
        steps: list[Step] = []
        if "steps" not in root:
            self.err(
                (), "S101", "missing required key 'steps'", "list the steps: steps: [- open: …]"
            )
        elif not isinstance(root["steps"], CommentedSeq) or not root["steps"]:
            self.err(
                ("steps",),
                "S103",
                "steps must be a non-empty list",
                "one '- open: …' / '- act: …' per line",
            )
        else:
            for i in range(len(root["steps"])):
                step = self.step(i)
                if step is not None:
                    steps.append(step)
        pack, rules_dir = self.pack_of(path)
        if title is None or pack is None or rules_dir is None:
            return None
        return Scenario(path, self.doc, title, pack, rules_dir, company, people, parameters, steps)

    def pack_of(self, path: Path) -> tuple[str | None, Path | None]:
        folder = path.resolve().parent
        if folder.name != SCENARIO_DIR or not (folder.parent / "procedure.yaml").is_file():
            self.err(
                (),
                "S101",
                "a scenario file belongs in the scenarios/ folder of its pack",
                "move it to rules/<pack>/scenarios/",
            )
            return None, None
        return folder.parent.name, folder.parent.parent

    def people(self) -> dict[str, PersonDef]:
        node = self.value(("people",))
        if not isinstance(node, CommentedMap):
            self.err(("people",), "S103", "people must be a mapping of user name: {roles: [...]}")
            return {}
        out: dict[str, PersonDef] = {}
        for username in node:
            loc: Loc = ("people", username)
            if not re.match(KEY_RE, str(username)):
                self.err(
                    loc,
                    "S103",
                    f"'{username}' is not a valid user name",
                    "lower-case letters, digits and _, starting with a letter",
                    key=True,
                )
                continue
            spec = node[username]
            if isinstance(spec, CommentedSeq):  # shorthand: the roles
                roles = self.names(loc, "roles") or []
                out[str(username)] = PersonDef(name=str(username), roles=roles)
                continue
            body = self.mapping(loc, _PERSON_KEYS, f"person '{username}'")
            if body is None:
                continue
            roles = (self.names(loc + ("roles",), "roles") or []) if "roles" in body else []
            deps = (
                (self.names(loc + ("departments",), "departments") or [])
                if "departments" in body
                else []
            )
            extra = {
                k: self.text(loc + (k,), k)
                for k in ("name", "email", "phone", "region")
                if k in body
            }
            skills = (self.names(loc + ("skills",), "skills") or []) if "skills" in body else []
            out[str(username)] = PersonDef(
                name=extra.pop("name", None) or str(username),
                roles=roles,
                departments=deps,
                skills=skills,
                email=extra.get("email"),
                phone=extra.get("phone"),
                region=extra.get("region"),
            )
        return out

    def step(self, i: int) -> Step | None:
        loc: Loc = ("steps", i)
        node = self.value(loc)
        if not isinstance(node, CommentedMap):
            self.err(loc, "S103", "a step must be a mapping: open:, act:, at: or expect:")
            return None
        kinds = [k for k in node if k in _STEP_KINDS]
        unknown = [k for k in node if k not in _STEP_KINDS and k not in _ITEM_EXTRA]
        for k in unknown:
            guess = did_you_mean(str(k), [*_STEP_KINDS, *_ITEM_EXTRA])
            self.err(
                loc + (k,),
                "S102",
                f"unknown key '{k}'",
                "a step is one of open:, act:, at:, after:, expect: (plus source:, note:)"
                + (f" (did you mean '{guess}'?)" if guess else ""),
                key=True,
            )
        actions = [k for k in kinds if k != "expect"]
        if not kinds:
            if not unknown:
                self.err(
                    loc, "S101", "this step does nothing", "give it open:, act:, at: or expect:"
                )
            return None
        if len(actions) > 1:
            self.err(
                loc + (actions[1],),
                "S103",
                f"one step does one thing: '{actions[0]}' and '{actions[1]}'",
                "split them into two list items",
                key=True,
            )
            return None
        for k in _ITEM_EXTRA:
            if k in node:
                self.text(loc + (k,), k)
        kind = actions[0] if actions else "expect"
        body: OpenStep | ActStep | AtStep | AfterStep | None = None
        if kind == "open":
            body = self.open_step(loc + ("open",))
        elif kind == "act":
            body = self.act_step(loc + ("act",))
        elif kind == "at":
            body = self.at_step(loc + ("at",))
        elif kind == "after":
            body = self.after_step(loc + ("after",))
        expect = None
        if "expect" in node:
            if kind in ("at", "after"):
                self.err(
                    loc + ("expect",),
                    "S103",
                    f"{kind}: takes no expect:",
                    "put the expectation in its own list item: - expect: …",
                    key=True,
                )
            else:
                expect = self.expect(loc + ("expect",), attached=kind != "expect")
        if kind != "expect" and body is None:
            return None
        return Step(i, loc, kind, body, expect)

    def open_step(self, loc: Loc) -> OpenStep | None:
        node = self.mapping(loc, _OPEN_KEYS, "open")
        if node is None:
            return None
        who = self.required_text(loc, node, "as", "who opens the case: as: <user name>")
        proc = self.text(loc + ("procedure",), "procedure") if "procedure" in node else None
        name = self.text(loc + ("name",), "name", KEY_RE) if "name" in node else None
        fields = self.fields(loc + ("fields",)) if "fields" in node else {}
        return OpenStep(who, proc, fields, name) if who is not None else None

    def act_step(self, loc: Loc) -> ActStep | None:
        node = self.mapping(loc, _ACT_KEYS, "act")
        if node is None:
            return None
        who = self.required_text(loc, node, "as", "who acts: as: <user name>")
        action = self.required_text(loc, node, "action", "which action: action: <name>")
        fields = self.fields(loc + ("fields",)) if "fields" in node else {}
        version = None
        if "version" in node:
            v = node["version"]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                self.err(
                    loc + ("version",), "S103", f"version must be a whole number from 1, not {v!r}"
                )
            else:
                version = int(v)
        case = self.case_ref(loc + ("case",)) if "case" in node else None
        if who is None or action is None:
            return None
        return ActStep(who, action, fields, version, case)

    def required_text(self, loc: Loc, node: CommentedMap, key: str, hint: str) -> str | None:
        if key not in node:
            self.err(loc, "S101", f"missing required key '{key}'", hint)
            return None
        return self.text(loc + (key,), key)

    def at_step(self, loc: Loc) -> AtStep | None:
        moment = parse_moment(_plain(self.value(loc)))
        if moment is None:
            self.err(
                loc,
                "S103",
                f"at: {self.value(loc)!r} is not a date and time",
                "write at: 2026-10-08 09:00 (company time) or 2026-10-08T01:00Z",
            )
            return None
        return AtStep(moment)

    def after_step(self, loc: Loc) -> AfterStep | None:
        value = _plain(self.value(loc))
        try:
            return AfterStep(Duration.parse(str(value)))
        except DurationError as exc:
            self.err(loc, "S103", f"after: {value!r} is not a duration: {exc.message}", exc.hint)
            return None

    # -- expectations ---------------------------------------------------------------------
    def expect(self, loc: Loc, attached: bool) -> Expect | None:
        node = self.mapping(loc, _EXPECT_KEYS, "expect")
        if node is None:
            return None
        checks: dict[str, tuple[Any, Loc]] = {}
        case = self.case_ref(loc + ("case",)) if "case" in node else None
        for key in node:
            kloc = loc + (key,)
            if key == "case" or key not in _EXPECT_KEYS:
                continue
            if key in ("refused", "error") and not attached:
                self.err(
                    kloc,
                    "S103",
                    f"{key}: is about one action: attach it to that open:/act:",
                    f"put expect: {{{key}: …}} in the same list item as the act: it is about",
                    key=True,
                )
                continue
            parsed = getattr(self, "x_" + key)(kloc)
            if parsed is not None:
                checks[str(key)] = (parsed, kloc)
        if "refused" in checks and "error" in checks:
            self.err(
                loc + ("error",),
                "S103",
                "an action is either refused by a rule or fails with an error",
                "keep one of refused: and error:",
                key=True,
            )
        if not checks and not self.diags.errors:
            self.err(
                loc,
                "S101",
                "expect: checks nothing",
                "say what to check: step:, fields:, outbox:, …",
            )
        return Expect(loc, case, checks, attached)

    def case_ref(self, loc: Loc) -> str | CaseSelector | None:
        """``case:``: a name an ``open:`` gave, or a selector mapping."""
        if not isinstance(self.value(loc), CommentedMap):
            return self.text(loc, "case", KEY_RE)
        body = self.mapping(loc, ("procedure", "nth", "fields", "created_by"), "case")
        if body is None:
            return None
        nth = body.get("nth", 1)
        if isinstance(nth, bool) or not isinstance(nth, int) or nth == 0:
            self.err(
                loc + ("nth",),
                "S103",
                f"nth must be a whole number (1 the first, -1 the last), not {nth!r}",
            )
            return None
        fields = _plain(body.get("fields") or {})
        if not isinstance(fields, dict):
            self.err(loc + ("fields",), "S103", "fields must be a mapping {field: value}")
            return None
        return CaseSelector(
            str(body["procedure"]) if "procedure" in body else None,
            nth,
            {str(k): v for k, v in fields.items()},
            str(body["created_by"]) if "created_by" in body else None,
        )

    def x_step(self, loc: Loc) -> str | None:
        return self.text(loc, "step")

    def x_status(self, loc: Loc) -> str | None:
        value = self.text(loc, "status")
        if value is not None and value not in ("open", "closed"):
            self.err(loc, "S103", f"status '{value}' is not open or closed")
            return None
        return value

    def x_fields(self, loc: Loc) -> dict[str, Any] | None:
        if not isinstance(self.value(loc), CommentedMap):
            self.err(loc, "S103", "fields must be a mapping of field: expected value")
            return None
        return self.fields(loc)

    def x_assignees(self, loc: Loc) -> list[str] | None:
        node = self.value(loc)
        if isinstance(node, CommentedSeq) and not node:
            return []
        out = self.names(loc, "assignees")
        if out is None:
            return None
        for i, a in enumerate(out):
            if not ASSIGNEE_RE.match(a):
                self.err(
                    loc + (i,) if isinstance(node, CommentedSeq) else loc,
                    "S103",
                    f"'{a}' is not an assignee",
                    "write role:agent, person:li or department:service",
                )
                return None
        return out

    def x_fired(self, loc: Loc) -> list[str] | None:
        node = self.value(loc)
        if isinstance(node, CommentedSeq) and not node:
            return []
        return self.names(loc, "fired")

    def x_refused(self, loc: Loc) -> dict[str, str] | None:
        node = self.value(loc)
        if node is True:
            return {}
        if isinstance(node, str):
            return {"message": str(node)}
        body = self.mapping(loc, ("message", "rule"), "refused")
        if body is None:
            return None
        return {
            k: v
            for k in ("message", "rule")
            if k in body and (v := self.text(loc + (k,), k)) is not None
        }

    def x_error(self, loc: Loc) -> tuple[str, dict[str, str | None] | None] | None:
        node = self.value(loc)
        fields: dict[str, str | None] | None = None
        if isinstance(node, str):
            code = str(node)
        elif isinstance(node, CommentedMap) and len(node) == 1:
            code = str(next(iter(node)))
            inner = node[code]
            if isinstance(inner, CommentedSeq) and all(isinstance(x, str) for x in inner):
                fields = {str(x): None for x in inner}
            elif isinstance(inner, CommentedMap):
                fields = {str(k): (None if v is None else str(v)) for k, v in inner.items()}
            else:
                self.err(loc + (code,), "S103", "name the fields: [a, b] or {field: message part}")
                return None
            if code != "invalid-input":
                self.err(
                    loc + (code,), "S103", f"only invalid-input names fields, not {code}", key=True
                )
                return None
        else:
            self.err(
                loc,
                "S103",
                "error must be a code, or {invalid-input: [fields]}",
                f"codes: {', '.join(ERROR_CODES)}",
            )
            return None
        if code not in ERROR_CODES:
            guess = did_you_mean(code, ERROR_CODES)
            hint = f"codes: {', '.join(ERROR_CODES)}" + (
                f" (did you mean '{guess}'?)" if guess else ""
            )
            if code == "refused-by-rule":
                hint = "a rule's refusal is checked with refused: <message part> or {rule: id}"
            self.err(loc, "S103", f"unknown error code '{code}'", hint)
            return None
        return code, fields

    def _list_of_maps(
        self, loc: Loc, keys: Sequence[str], what: str
    ) -> list[tuple[dict[str, Any], Loc]] | None:
        node = self.value(loc)
        if not isinstance(node, CommentedSeq):
            self.err(loc, "S103", f"{what} must be a list", "one '- {…}' per entry ([] for none)")
            return None
        out = []
        for i in range(len(node)):
            body = self.mapping(loc + (i,), keys, f"an entry of {what}")
            if body is not None:
                out.append(({str(k): _plain(v) for k, v in body.items()}, loc + (i,)))
        return out

    def x_outbox(self, loc: Loc) -> list[tuple[dict[str, Any], Loc]] | None:
        return self._list_of_maps(loc, _OUTBOX_KEYS, "outbox")

    def x_linked(self, loc: Loc) -> list[tuple[dict[str, Any], Loc]] | None:
        return self._list_of_maps(loc, _LINKED_KEYS, "linked")

    def x_journal(self, loc: Loc) -> dict[str, list[tuple[dict[str, Any], Loc]]] | None:
        node = self.value(loc)
        if isinstance(node, CommentedSeq):
            inc = self._list_of_maps(loc, _JOURNAL_KEYS, "journal")
            return None if inc is None else {"include": inc, "exclude": []}
        body = self.mapping(loc, ("include", "exclude"), "journal")
        if body is None:
            return None
        out: dict[str, list[tuple[dict[str, Any], Loc]]] = {"include": [], "exclude": []}
        for k in ("include", "exclude"):
            if k in body:
                out[k] = self._list_of_maps(loc + (k,), _JOURNAL_KEYS, f"journal {k}") or []
        return out

    def x_cases(self, loc: Loc) -> dict[str, Any] | None:
        body = self.mapping(loc, ("procedure", "count", "fields", "created_by"), "cases")
        if body is None:
            return None
        out: dict[str, Any] = {str(k): _plain(v) for k, v in body.items()}
        if "count" in out and (isinstance(out["count"], bool) or not isinstance(out["count"], int)):
            self.err(
                loc + ("count",), "S103", f"count must be a whole number, not {out['count']!r}"
            )
            return None
        if "fields" in out and not isinstance(out["fields"], list):
            self.err(
                loc + ("fields",),
                "S103",
                "fields must be a list: one mapping per case, oldest first",
            )
            return None
        return out

    def x_timers(self, loc: Loc) -> list[str] | None:
        node = self.value(loc)
        if isinstance(node, CommentedSeq) and not node:
            return []
        out = self.names(loc, "timers")
        if out is None:
            return None
        for kind in out:
            if kind not in TIMER_KINDS:
                self.err(
                    loc,
                    "S103",
                    f"'{kind}' is not a timer kind",
                    f"timer kinds: {', '.join(TIMER_KINDS)}; [] for none",
                )
                return None
        return out

    def x_next_due(self, loc: Loc) -> dt.datetime | None | bool:
        value = _plain(self.value(loc))
        if value is None:
            return False  # "no deadline running" (None means: not parsed)
        moment = parse_moment(value)
        if moment is None:
            self.err(
                loc,
                "S103",
                f"next_due: {value!r} is not a date and time",
                "e.g. 2026-11-07 16:00, or null",
            )
        return moment

    def x_deadlines(self, loc: Loc) -> dict[str, tuple[dict[str, Any], Loc]] | None:
        node = self.value(loc)
        if not isinstance(node, CommentedMap):
            self.err(
                loc,
                "S103",
                "deadlines must map an SLA id to what to check",
                "e.g. deadlines: {reply: {state: breached, due: 2026-10-09 17:30}}",
            )
            return None
        out: dict[str, tuple[dict[str, Any], Loc]] = {}
        for sid in node:
            sloc = loc + (sid,)
            if isinstance(node[sid], str):  # shorthand: the state
                body: dict[str, Any] = {"state": str(node[sid])}
            else:
                raw = self.mapping(sloc, _DEADLINE_KEYS, f"deadlines.{sid}")
                if raw is None:
                    continue
                body = {str(k): _plain(v) for k, v in raw.items()}
            if "state" in body and body["state"] not in DEADLINE_STATES:
                self.err(
                    sloc,
                    "S103",
                    f"unknown deadline state {body['state']!r}",
                    f"states: {', '.join(DEADLINE_STATES)}",
                )
                continue
            for k in ("due", "warn", "started"):
                if k in body and body[k] is not None and parse_moment(body[k]) is None:
                    self.err(
                        sloc + (k,),
                        "S103",
                        f"{k}: {body[k]!r} is not a date and time",
                        "write 2026-10-09 17:30 (company time)",
                    )
            out[str(sid)] = (body, sloc)
        return out

    def x_actions(self, loc: Loc) -> list[tuple[dict[str, Any], Loc]] | None:
        node = self.value(loc)
        items = (
            [(loc + (i,)) for i in range(len(node))] if isinstance(node, CommentedSeq) else [loc]
        )
        out = []
        for iloc in items:
            body = self.mapping(iloc, _ACTIONS_KEYS, "actions")
            if body is None:
                continue
            if "as" not in body:
                self.err(
                    iloc, "S101", "missing required key 'as'", "whose actions: as: <user name>"
                )
                continue
            spec: dict[str, Any] = {"as": self.text(iloc + ("as",), "as")}
            for k in ("include", "exclude", "only"):
                if k in body:
                    node_k = self.value(iloc + (k,))
                    spec[k] = (
                        []
                        if isinstance(node_k, CommentedSeq) and not node_k
                        else self.names(iloc + (k,), k)
                    )
            if len(spec) == 1:
                self.err(iloc, "S101", "actions: checks nothing", "add include:, exclude: or only:")
                continue
            out.append((spec, iloc))
        return out


def _stored_item(fdef: Any, item: Any) -> Any:
    """An expected list item as the case stores it (its id kept, each field coerced)."""
    if not isinstance(item, dict):
        return item
    out: dict[str, Any] = {}
    for key, value in item.items():
        sub = (fdef.of or {}).get(str(key))
        try:
            value = coerce(sub, value) if sub is not None else value
        except FieldValueError:
            pass
        if value is not None:
            out[str(key)] = value
    return out


def parse_moment(value: Any) -> dt.datetime | None:
    """A point in time from a scenario: naive values are company time (the caller's job)."""
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)  # noqa: DTZ001  # company time, made aware by the runner
    if isinstance(value, str):
        text_ = value.strip().replace("Z", "+00:00")
        try:
            return dt.datetime.fromisoformat(text_)
        except ValueError:
            return None
    return None


# -- the company and the catalog -------------------------------------------------------------
def _plugins_loaded() -> Extensions:
    """The installed plugins (loaded once); a broken one is a ScenarioError."""
    try:
        return installed()
    except PluginError as exc:
        raise ScenarioError(f"kefu: {exc}") from exc


@dataclass
class _Setup:
    catalog: Catalog
    company: LoadedCompany
    timezone: zoneinfo.ZoneInfo


def _setup(sc: Scenario, extra_effects: Iterable[EffectType] | None) -> _Setup:
    """Load the pack(s) and build the company the scenario runs in; check references."""
    extensions = _plugins_loaded()
    # the built-in types, the plugins' types and the scenario's own
    effects = effect_registry(extensions, extra_effects or ())
    diags = Diagnostics()
    packs: dict[str, LoadedPack] = {}

    def load(key: str) -> LoadedPack | None:
        if key in packs:
            return packs[key]
        folder = sc.rules_dir / key
        if not (folder / "procedure.yaml").is_file():
            return None
        lp, d = load_pack(folder, effects, extensions=extensions)
        diags.extend(d.errors)
        if lp is not None:
            packs[key] = lp
        return lp

    own = load(sc.pack)
    if own is None:
        diags.insert(
            0,
            sc.doc.diag(
                (),
                "S106",
                f"the pack '{sc.pack}' has errors: fix them first",
                f"run kefu validate {sc.rules_dir / sc.pack}",
            ),
        )
        sc.problems = list(diags)
        raise ScenarioInvalid(diags)
    if sc.company is None:
        lc = _builtin_company(sc, own, load, effects, diags)
    else:
        lc = _config_company(sc, load, effects, diags)
    if diags.errors or lc is None:
        sc.problems = list(diags)
        raise ScenarioInvalid(diags)
    cat = Catalog(packs=packs, companies={lc.key: lc}, effects=dict(effects), extensions=extensions)
    _check_references(sc, lc, diags)
    if diags.errors:
        sc.problems = list(diags)
        raise ScenarioInvalid(sorted(diags, key=lambda d: (d.file, d.line, d.col)))
    return _Setup(cat, lc, zoneinfo.ZoneInfo(lc.company.timezone))


def _open_targets(proc: CompiledProcedure) -> set[str]:
    """The procedures the pack's rules name (``open_case`` opens them, ``count_cases``
    counts them): the built-in company enables them too (as K114 asks of a company)."""
    return {
        args.procedure
        for rule in proc.rules
        for _etype, args in rule.effects
        if isinstance(getattr(args, "procedure", None), str)
    }


def _builtin_company(
    sc: Scenario,
    own: LoadedPack,
    load: Callable[[str], LoadedPack | None],
    effects: Mapping[str, EffectType],
    diags: Diagnostics,
) -> LoadedCompany | None:
    """A minimal company: the scenario's people hold their roles directly."""
    for name, person in sc.people.items():
        if person.departments:
            diags.append(
                sc.doc.diag(
                    ("people", name, "departments"),
                    "S103",
                    "the built-in company has no departments",
                    "give the person roles:, or run in a company config: company: config/<x>.yaml",
                )
            )
    params = _parameters(sc, own, diags)
    procs: dict[str, CompiledProcedure] = {}
    todo = [own.key]
    while todo:
        key = todo.pop()
        if key in procs:
            continue
        lp = load(key)
        if lp is None:
            continue  # reported when the case service refuses the linked case
        procs[key] = compile_procedure(
            lp.pack,
            params if key == own.key else {},
            company=BUILTIN_COMPANY,
            effects=effects,
            raw=lp.raw,
        )
        todo.extend(_open_targets(procs[key]))
    company = CompanyDef.model_validate(
        {
            "kefu": 1,
            "company": BUILTIN_COMPANY,
            "name": {"zh-CN": "场景测试", "en": "Scenario test"},
            "timezone": BUILTIN_TIMEZONE,
            "locale": "zh-CN",
            "procedures": {k: {"parameters": params if k == own.key else {}} for k in procs},
        }
    )
    company = company.model_copy(update={"people": dict(sc.people)})
    return LoadedCompany(company, sc.path, sc.doc, procs)


def _config_company(
    sc: Scenario,
    load: Callable[[str], LoadedPack | None],
    effects: Mapping[str, EffectType],
    diags: Diagnostics,
) -> LoadedCompany | None:
    assert sc.company is not None
    candidates = [sc.path.parent / sc.company, sc.rules_dir.parent / sc.company]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        diags.append(
            sc.doc.diag(
                ("company",),
                "S104",
                f"no company config '{sc.company}'",
                f"give a path relative to the project ({sc.rules_dir.parent}) "
                "or to this file, e.g. config/demo.yaml",
            )
        )
        return None
    packs = {
        k: lp
        for k, lp in ((d.name, load(d.name)) for d in pack_dirs(sc.rules_dir))
        if lp is not None
    }
    lc, d = load_company(path, packs, effects, extensions=installed())
    diags.extend(d.errors)
    if lc is None:
        return None
    own = packs[sc.pack]
    if sc.pack not in lc.procedures:
        diags.append(
            sc.doc.diag(
                ("company",),
                "S104",
                f"company '{lc.key}' does not enable '{sc.pack}'",
                f"enable it in {path.name} under procedures:",
            )
        )
        return None
    known_deps = set(lc.company.departments)
    for name, person in sc.people.items():
        for i, dep in enumerate(person.departments):
            if dep not in known_deps:
                loc: Loc = ("people", name, "departments")
                node = sc.doc.value_at(loc)
                diags.append(
                    sc.doc.diag(
                        loc + (i,) if isinstance(node, list) else loc,
                        "S104",
                        f"unknown department '{dep}'",
                        f"departments of {lc.key}: {', '.join(sorted(known_deps))}",
                    )
                )
    if sc.parameters:
        params = dict(lc.procedures[sc.pack].params)
        params.update(_parameters(sc, own, diags))
        lc.procedures[sc.pack] = compile_procedure(
            own.pack, params, company=lc.key, effects=effects, raw=own.raw
        )
    people = dict(lc.company.people)
    people.update(sc.people)
    lc.company = lc.company.model_copy(update={"people": people})
    return lc


def _parameters(sc: Scenario, own: LoadedPack, diags: Diagnostics) -> dict[str, Any]:
    out = {}
    for name, value in sc.parameters.items():
        pdef = own.pack.parameters.get(name)
        if pdef is None:
            diags.append(
                sc.doc.diag(
                    ("parameters", name),
                    "S104",
                    f"unknown parameter '{name}'",
                    _options_hint(name, own.pack.parameters, f"parameters of {own.key}"),
                    key=True,
                )
            )
        elif not param_fits(pdef.type, value):
            diags.append(
                sc.doc.diag(
                    ("parameters", name),
                    "S103",
                    f"parameter '{name}' must be {pdef.type}, not {value!r}",
                )
            )
        else:
            out[name] = value
    return out


def _options_hint(word: str, options: Iterable[str], what: str) -> str:
    opts = sorted(options)
    guess = did_you_mean(word, opts)
    return f"{what}: {', '.join(opts) or '(none)'}" + (
        f" (did you mean '{guess}'?)" if guess else ""
    )


def _system_rule_ids(procs: Iterable[CompiledProcedure]) -> set[str]:
    """The rule ids the pipeline journals for what the engine does by itself: a step's
    ``wait_for`` moving a case on, SLA escalations, timers and schedules firing."""
    out: set[str] = set()
    for p in procs:
        out.update(f"wait_for.{s.wait_for.link}" for s in p.pack.steps.values() if s.wait_for)
        out.update(f"sla.{name}" for name in p.slas)
        out.update(f"timer.{name}" for name in p.timers)
        out.update(f"schedule.{name}" for name in p.pack.schedules)
    return out


def _check_references(sc: Scenario, lc: LoadedCompany, diags: Diagnostics) -> None:
    """Every person, action, rule, step and field a scenario names exists."""
    doc = sc.doc
    procs = lc.procedures
    people = set(lc.company.people)
    roles = {r for p in procs.values() for r in p.pack.roles}
    steps = {s for p in procs.values() for s in p.pack.steps}
    actions = {a for p in procs.values() for s in p.pack.steps.values() for a in s.actions}
    rules = {r.id for p in procs.values() for r in p.rules} | _system_rule_ids(procs.values())
    fields = {f for p in procs.values() for f in p.pack.fields}

    def ref(loc: Loc, name: Any, known: set[str], what: str, hint_what: str) -> None:
        if name is not None and name not in known:
            diags.append(
                doc.diag(
                    loc,
                    "S104",
                    f"unknown {what} '{name}'",
                    _options_hint(str(name), known, hint_what),
                )
            )

    for name, person in sc.people.items():
        node = doc.value_at(("people", name))
        for i, role in enumerate(person.roles):
            rloc: Loc = ("people", name) if isinstance(node, list) else ("people", name, "roles")
            if isinstance(doc.value_at(rloc), list):
                rloc = rloc + (i,)
            ref(rloc, role, roles, "role", "roles")

    cases: set[str] = set()
    for step in sc.steps:
        loc = step.loc
        body = step.body
        if isinstance(body, OpenStep):
            ref(loc + ("open", "as"), body.who, people, "person", "people")
            if body.procedure is not None:
                ref(
                    loc + ("open", "procedure"),
                    body.procedure,
                    set(procs),
                    "procedure",
                    "procedures enabled",
                )
            if body.name:
                cases.add(body.name)
        elif isinstance(body, ActStep):
            ref(loc + ("act", "as"), body.who, people, "person", "people")
            ref(loc + ("act", "action"), body.action, actions, "action", "actions")
            if isinstance(body.case, str):
                ref(loc + ("act", "case"), body.case, cases, "case", "cases named so far")
            elif isinstance(body.case, CaseSelector) and body.case.procedure is not None:
                ref(
                    loc + ("act", "case", "procedure"),
                    body.case.procedure,
                    set(procs),
                    "procedure",
                    "procedures enabled",
                )
        ex = step.expect
        if ex is None:
            continue
        if isinstance(ex.case, str):
            ref(ex.loc + ("case",), ex.case, cases, "case", "cases named so far")
        elif isinstance(ex.case, CaseSelector) and ex.case.procedure is not None:
            ref(
                ex.loc + ("case", "procedure"),
                ex.case.procedure,
                set(procs),
                "procedure",
                "procedures enabled",
            )
        for key, (value, kloc) in ex.checks.items():
            if key == "step":
                ref(kloc, value, steps, "step", "steps")
            elif key == "fields":
                for fname in value:
                    ref(kloc + (fname,), fname, fields, "field", "fields")
            elif key == "fired":
                node = doc.value_at(kloc)
                for i, rid in enumerate(value):
                    ref(
                        kloc + (i,) if isinstance(node, list) else kloc, rid, rules, "rule", "rules"
                    )
            elif key == "refused" and "rule" in value:
                ref(kloc + ("rule",), value["rule"], rules, "rule", "rules")
            elif key == "journal":
                for item, iloc in value["include"] + value["exclude"]:
                    ref(iloc + ("rule",), item.get("rule"), rules, "rule", "rules")
                    ref(iloc + ("action",), item.get("action"), actions, "action", "actions")
            elif key == "actions":
                for spec, iloc in value:
                    ref(iloc + ("as",), spec["as"], people, "person", "people")
                    for k in ("include", "exclude", "only"):
                        node = doc.value_at(iloc + (k,))
                        for i, a in enumerate(spec.get(k) or []):
                            ref(
                                iloc + (k, i) if isinstance(node, list) else iloc + (k,),
                                a,
                                actions,
                                "action",
                                "actions",
                            )
            elif key == "linked":
                for item, iloc in value:
                    ref(
                        iloc + ("procedure",),
                        item.get("procedure"),
                        set(procs),
                        "procedure",
                        "procedures enabled",
                    )
                    ref(iloc + ("step",), item.get("step"), steps, "step", "steps")
                    ref(iloc + ("rule",), item.get("rule"), rules, "rule", "rules")
                    if item.get("name"):
                        cases.add(str(item["name"]))


# -- databases --------------------------------------------------------------------------------
_TEMPLATE: Path | None = None


def _sqlite_template() -> Path:
    """A migrated empty SQLite file, made once per process and copied for each run."""
    global _TEMPLATE
    if _TEMPLATE is None or not _TEMPLATE.exists():
        folder = Path(tempfile.mkdtemp(prefix="kefu-scenarios-"))
        # only a kept temporary database registers a clean-up
        import atexit

        atexit.register(shutil.rmtree, folder, True)
        path = folder / "template.db"
        db = Database(f"sqlite:///{path}")
        upgrade(db)
        db.dispose()  # the last connection closing checkpoints the WAL into the file
        _TEMPLATE = path
    return _TEMPLATE


@contextlib.contextmanager
def temporary_pg_database(url: str, prefix: str = "kefu_scenario") -> Iterator[str]:
    """Create a throwaway database on the server of ``url``; yield its URL; drop it."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield url.rsplit("/", 1)[0] + "/" + name
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextlib.contextmanager
def fresh_database(db_url: str | None = None) -> Iterator[Database]:
    """An empty migrated database for one run.

    ``None``: a SQLite file in a temporary folder, removed afterwards. A PostgreSQL URL
    names the server: a throwaway database is created there and dropped afterwards. A
    SQLite URL names a file that must not exist yet; it is kept, to look into.
    """
    if db_url is None:
        with tempfile.TemporaryDirectory(prefix="kefu-scenario-") as folder:
            path = Path(folder) / "kefu.db"
            shutil.copyfile(_sqlite_template(), path)
            db = Database(f"sqlite:///{path}")
            try:
                yield db
            finally:
                db.dispose()
    elif db_url.startswith("sqlite"):
        file = db_url.split("///", 1)[-1]
        if not file or file == ":memory:" or Path(file).exists():
            raise ScenarioError(
                f"{db_url}: give a SQLite file that does not exist yet "
                "(scenarios need an empty database; the file is kept afterwards)"
            )
        db = Database(db_url)
        try:
            upgrade(db)
            yield db
        finally:
            db.dispose()
    else:
        with temporary_pg_database(db_url) as url:
            db = Database(url)
            try:
                upgrade(db)
                yield db
            finally:
                db.dispose()


# -- running ----------------------------------------------------------------------------------
@dataclass
class StepTrace:
    """What one step did: for comparing runs on different evaluators."""

    where: str
    kind: str
    outcome: str  # "ok" or an error code
    fired: list[str] | None
    case: dict[str, Any] | None
    refused_by: str | None = None  # the rule that refused the action, if one did


@dataclass
class ScenarioResult:
    """What running one scenario gave: its trace, the final state of its cases, its time."""

    title: str
    display: str
    engine: str
    trace: list[StepTrace] = field(default_factory=list)
    #: every case at the end: its state, journal and outbox (times and hashes left out)
    final: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def run_scenario(
    scenario: Scenario | Path | str,
    *,
    db_url: str | None = None,
    evaluator_kind: str | None = None,
    evaluator: Evaluator | None = None,
    db: Database | None = None,
    extra_effects: Iterable[EffectType] | None = None,
) -> ScenarioResult:
    """Run one scenario on a fresh database; raise :class:`ScenarioError` when it fails.

    ``evaluator_kind`` picks the rules engine (default: the platform's default);
    ``evaluator`` passes a running one instead (it is left open, for the next run).
    ``db`` is an empty migrated database to use; otherwise :func:`fresh_database`
    makes one from ``db_url``. ``extra_effects``: effect types beyond the built-in and the
    plugins' ones (default: those of the installed plugins).
    """
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(Path(scenario))
    setup = _setup(sc, extra_effects)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if db is None:
            db = stack.enter_context(fresh_database(db_url))
        ev: Evaluator | str = (
            evaluator if evaluator is not None else (evaluator_kind or default_kind())
        )
        clock = TestClock()
        svc = build_service(db, setup.catalog, evaluator=ev, clock=clock, migrate=False)
        if evaluator is None:
            stack.callback(
                svc.close
            )  # our own evaluator: stop it (a durable one is a child process)
        create_config_people(svc, passwords=False)
        run = _Run(sc, setup, svc, clock)
        result = ScenarioResult(sc.title, sc.display, getattr(svc.evaluator, "name", str(ev)))
        run.execute(result)
        result.final = run.final_state()
    result.seconds = time.monotonic() - started
    return result


_ALIAS_LAST = "\0last"


class _Run:
    def __init__(self, sc: Scenario, setup: _Setup, svc: CaseService, clock: TestClock) -> None:
        self.sc = sc
        self.svc = svc
        self.clock = clock
        self.tz = setup.timezone
        self.company = setup.company.key
        self.cases: dict[str, int] = {}  # alias -> case id
        self.all_cases: list[int] = []
        self.current: int | None = None
        self.last: tuple[str, ActResult | KefuError] | None = (
            None  # (where, outcome) of the last open/act
        )
        self.outbox_mark = 0

    # -- steps ----------------------------------------------------------------------------
    def execute(self, result: ScenarioResult) -> None:
        for step in self.sc.steps:
            where = self.sc.where(step.loc + ((step.kind,) if step.kind != "expect" else ()))
            outcome, fired, refused_by = "ok", None, None
            if isinstance(step.body, AtStep):
                self.at(step, where)
            elif isinstance(step.body, AfterStep):
                self.after(step.body)
            elif isinstance(step.body, OpenStep | ActStep):
                res = (
                    self.open(step, step.body, where)
                    if isinstance(step.body, OpenStep)
                    else self.act(step, step.body, where)
                )
                if isinstance(res, KefuError):
                    outcome = res.code
                    refused_by = res.details.get("rule") if res.code == "refused-by-rule" else None
                else:
                    fired = self.ordered(res)
            if step.expect is not None:
                self.check(step.expect)
            snap = self.snapshot(self.current) if self.current is not None else None
            result.trace.append(StepTrace(where, step.kind, outcome, fired, snap, refused_by))

    def at(self, step: Step, where: str) -> None:
        assert isinstance(step.body, AtStep)
        moment = step.body.moment
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.tz)
        if moment < self.clock.now() and self.last is not None:
            raise ScenarioFailed(
                where,
                f"at: time only moves forward once something happened: "
                f"{self.local(moment)} is before {self.local(self.clock.now())}",
            )
        run_until(self.svc, moment)

    def after(self, body: AfterStep) -> None:
        target = body.duration.add(self.clock.now(), self.svc.calendar(self.company))
        run_until(self.svc, target)

    def local(self, moment: dt.datetime) -> str:
        return moment.astimezone(self.tz).strftime("%Y-%m-%d %H:%M")

    def form(self, procedure: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Scenario field values as form input: a date and time without offset is company time."""
        proc = self.svc.company(self.company).procedures.get(procedure)
        out = dict(fields)
        if proc is None:
            return out
        for name, value in fields.items():
            fdef = proc.pack.fields.get(name)
            if fdef is not None and fdef.type == "list" and fdef.of:
                subs = fdef.of
                items = value if isinstance(value, list) else [value]
                items = [
                    {
                        k: self.moment(v) if k in subs and subs[k].type == "datetime" else v
                        for k, v in item.items()
                    }
                    if isinstance(item, dict)
                    else item
                    for item in items
                ]
                out[name] = items if isinstance(value, list) else items[0]
            elif fdef is not None and fdef.type == "datetime":
                out[name] = self.moment(value)
        return out

    def moment(self, value: Any) -> Any:
        """A date and time from a scenario as form input: without an offset, company time."""
        moment = parse_moment(value) if isinstance(value, str | dt.datetime) else None
        if moment is not None and moment.tzinfo is None:
            return moment.replace(tzinfo=self.tz).isoformat()
        if isinstance(value, dt.datetime):
            return value.isoformat()
        return value

    def open(self, step: Step, body: OpenStep, where: str) -> ActResult | KefuError:
        procedure = body.procedure or self.sc.pack
        try:
            actor = self.svc.actor(self.company, body.who)
            res: ActResult | KefuError = self.svc.open_case(
                self.company, procedure, actor, self.form(procedure, body.fields)
            )
        except KefuError as exc:
            res = exc
        what = f"open {procedure} as {body.who}"
        self.outcome(step, where, what, res)
        if isinstance(res, ActResult):
            self.current = res.case.id
            self.all_cases.append(res.case.id)
            if body.name:
                self.cases[body.name] = res.case.id
        return res

    def act(self, step: Step, body: ActStep, where: str) -> ActResult | KefuError:
        case_id = self.case_id(body.case, where)
        self.current = case_id
        try:
            view = self.svc.get_case(self.company, case_id)
            actor = self.svc.actor(self.company, body.who)
            version = body.version if body.version is not None else view.version
            res: ActResult | KefuError = self.svc.act(
                self.company,
                case_id,
                body.action,
                actor,
                self.form(view.procedure, body.fields),
                version,
            )
        except KefuError as exc:
            res = exc
        self.outcome(step, where, f"act '{body.action}' as {body.who}", res)
        return res

    def case_id(self, alias: str | CaseSelector | None, where: str) -> int:
        if isinstance(alias, CaseSelector):
            return self.select(alias, where)
        if alias is not None:
            return self.cases[alias]  # checked before the run: named by an earlier step
        if self.current is None:
            raise ScenarioFailed(where, "no case yet: open one first")
        return self.current

    def select(self, sel: CaseSelector, where: str) -> int:
        """The case a selector names, among this company's cases in the order opened."""
        rt = self.svc.company(self.company)
        q = select(t.case.c.id, t.case.c.fields).where(t.case.c.company_id == rt.id)
        if sel.procedure is not None:
            q = q.where(t.case.c.procedure == sel.procedure)
        if sel.created_by is not None:
            q = q.where(t.case.c.created_by == sel.created_by)
        with self.svc.db.read() as conn:
            rows = conn.execute(q.order_by(t.case.c.id)).all()
        found = [r.id for r in rows if all(r.fields.get(k) == v for k, v in sel.fields.items())]
        index = sel.nth - 1 if sel.nth > 0 else sel.nth
        if not -len(found) <= index < len(found):
            raise ScenarioFailed(
                where,
                f"no {sel.describe()}: {len(found)} case(s) match"
                + (f" of {len(rows)}" if rows else ""),
            )
        return int(found[index])

    def outcome(self, step: Step, where: str, what: str, res: ActResult | KefuError) -> None:
        self.last = (where, res)
        checks = step.expect.checks if step.expect is not None else {}
        wants_failure = "error" in checks or "refused" in checks
        if isinstance(res, KefuError) and not wants_failure:
            raise ScenarioFailed(
                where,
                f"{what} failed: {_describe_error(res)}",
                [
                    "hint: if that is what should happen, say so in this list item: "
                    "expect: {"
                    f"{'refused' if res.code == 'refused-by-rule' else 'error'}: "
                    f"{_error_hint(res)}}}"
                ],
            )
        if isinstance(res, ActResult) and wants_failure:
            assert step.expect is not None
            key = "error" if "error" in checks else "refused"
            _, kloc = checks[key]
            raise ScenarioFailed(
                self.sc.where(kloc),
                f"{what}: expected it to fail ({_expected_failure(checks)}), "
                f"but it succeeded: the case is now at step '{res.case.step}' "
                f"(fired: {', '.join(self.ordered(res)) or 'no rules'})",
            )

    def ordered(self, res: ActResult) -> list[str]:
        """Fired rules in their declared order (opening returns them sorted by id)."""
        proc = self.svc.pinned(res.case)
        index = {r.id: i for i, r in enumerate(proc.rules)}
        return sorted(res.fired, key=lambda rid: index.get(rid, len(index)))

    # -- expectations ---------------------------------------------------------------------
    def check(self, ex: Expect) -> None:
        problems: list[tuple[str, str]] = []
        case_id = (
            self.case_id(ex.case, self.sc.where(ex.loc)) if ex.case is not None else self.current
        )
        view = self.svc.get_case(self.company, case_id) if case_id is not None else None
        for key, (value, kloc) in ex.checks.items():
            where = self.sc.where(kloc)
            if key not in ("error", "refused", "fired", "outbox", "cases") and view is None:
                problems.append((where, f"expect.{key}: no case yet: open one first"))
                continue
            for msg in getattr(self, "c_" + key)(value, kloc, view):
                problems.append((where, f"expect.{key}: {msg}"))
        mark = max((m["id"] for m in self.svc.outbox(self.company)), default=0)
        self.outbox_mark = mark
        if problems:
            raise ScenarioFailed(
                problems[0][0], problems[0][1], [f"{w}: {m}" for w, m in problems[1:]]
            )

    def last_action(self) -> tuple[str, ActResult | KefuError]:
        if self.last is None:
            raise ScenarioFailed(self.sc.display + ":1", "no action yet")
        return self.last

    def c_step(self, want: str, loc: Loc, view: CaseView) -> list[str]:
        return [] if view.step == want else [f"expected step '{want}', found '{view.step}'"]

    def c_status(self, want: str, loc: Loc, view: CaseView) -> list[str]:
        return [] if view.status == want else [f"expected status '{want}', found '{view.status}'"]

    def c_fields(self, want: dict[str, Any], loc: Loc, view: CaseView) -> list[str]:
        proc = self.svc.pinned(view)
        out = []
        form = self.form(view.procedure, want)
        for name, expected in form.items():
            fdef = proc.pack.fields.get(name)
            stored = expected
            if fdef is not None and fdef.type == "list" and isinstance(expected, list):
                stored = [_stored_item(fdef, item) for item in expected]
            elif fdef is not None:
                try:
                    stored = coerce(fdef, expected)
                except FieldValueError:
                    pass
            found = view.fields.get(name)
            if found != stored:
                out.append(f"field '{name}': expected {_show(want[name])}, found {_show(found)}")
        return out

    def c_assignees(self, want: list[str], loc: Loc, view: CaseView) -> list[str]:
        if sorted(want) == sorted(view.assignees):
            return []
        return [f"expected assignees {_show(want)}, found {_show(view.assignees)}"]

    def c_fired(self, want: list[str], loc: Loc, view: CaseView | None) -> list[str]:
        where, res = self.last_action()
        if isinstance(res, KefuError):
            return [f"the last action ({where}) failed ({res.code}): no rules were applied"]
        got = self.ordered(res)
        return (
            []
            if got == want
            else [
                f"expected rules {_show(want)} to fire, "
                f"found {_show(got)} (of the action at {where})"
            ]
        )

    def c_refused(self, want: dict[str, str], loc: Loc, view: CaseView | None) -> list[str]:
        _, res = self.last_action()
        assert isinstance(res, KefuError)  # outcome() made sure it failed
        if res.code != "refused-by-rule":
            return [f"expected a refusal by a rule, found {_describe_error(res)}"]
        out = []
        if "message" in want and want["message"] not in res.message:
            out.append(f"expected the refusal to say {want['message']!r}, it says {res.message!r}")
        rule = res.details.get("rule")
        if "rule" in want and want["rule"] != rule:
            out.append(f"expected rule '{want['rule']}' to refuse, found '{rule}'")
        return out

    def c_error(
        self, want: tuple[str, dict[str, str | None] | None], loc: Loc, view: CaseView | None
    ) -> list[str]:
        code, fields = want
        _, res = self.last_action()
        assert isinstance(res, KefuError)
        if res.code != code:
            return [f"expected error {code}, found {_describe_error(res)}"]
        if not fields:
            return []
        errors: dict[str, str] = res.details.get("errors") or {}
        out = []
        for name, part in fields.items():
            if name not in errors:
                out.append(
                    f"expected field '{name}' to be in error, found errors for: "
                    f"{', '.join(f'{k} ({v})' for k, v in errors.items()) or 'none'}"
                )
            elif part is not None and part not in errors[name]:
                out.append(
                    f"field '{name}': expected the error to say {part!r}, it says {errors[name]!r}"
                )
        extra = sorted(set(errors) - set(fields))
        if extra and not out:
            out.append(
                f"fields {', '.join(f'{k} ({errors[k]})' for k in extra)} are in error too; "
                "list them as well"
            )
        return out

    def c_outbox(
        self, want: list[tuple[dict[str, Any], Loc]], loc: Loc, view: CaseView | None
    ) -> list[str]:
        new = [m for m in self.svc.outbox(self.company) if m["id"] > self.outbox_mark]
        found = [_message(m) for m in new]
        out = [
            f"message {i + 1} ({m['template']}): "
            f"its template failed: {(m.get('payload') or {})['error']}"
            for i, m in enumerate(new)
            if (m.get("payload") or {}).get("error")
        ]
        for i, (spec, _iloc) in enumerate(want):
            if i >= len(new):
                out.append(
                    f"expected message {i + 1} {_show(spec)}, found none "
                    f"(new since the previous expect: {_show(found) if found else 'none'})"
                )
                continue
            have = found[i]
            diffs = []
            for k, v in spec.items():
                if k == "fields":
                    bad = {f: val for f, val in (v or {}).items() if have["fields"].get(f) != val}
                    if bad:
                        diffs.append(f"fields {_show(bad)} (it has {_show(have['fields'])})")
                elif k == "text":
                    parts = [str(p) for p in (v if isinstance(v, list) else [v])]
                    missing = [p for p in parts if p not in have["text"]]
                    if missing:
                        diffs.append(
                            f"text containing {_show(missing)} "
                            f"(it reads {_show(have['text'] or '(no text)')})"
                        )
                elif have.get(k) != v:
                    diffs.append(f"{k} {_show(v)} (it has {_show(have.get(k))})")
            if diffs:
                out.append(f"message {i + 1}: expected {'; '.join(diffs)}")
        if len(new) > len(want):
            out.append(
                f"{len(new) - len(want)} more message(s) than expected: {_show(found[len(want) :])}"
            )
        return out

    def c_journal(
        self, want: dict[str, list[tuple[dict[str, Any], Loc]]], loc: Loc, view: CaseView
    ) -> list[str]:
        entries = self.svc.journal(self.company, view.id)
        got = [
            {
                "kind": e["kind"],
                "rule": e["rule_id"],
                "action": e["action"],
                "actor": e["actor"],
                "facts": e["facts"] or {},
                "items": (e["data"] or {}).get("items") or {},
            }
            for e in entries
        ]

        def fits(g: dict[str, Any], key: str, want: Any) -> bool:
            if key in ("facts", "items"):  # these facts / list fields, as given
                return isinstance(want, dict) and all(
                    g[key].get(str(k)) == v for k, v in want.items()
                )
            return bool(g.get(key) == want)

        def match(spec: dict[str, Any]) -> bool:
            return any(all(fits(g, k, v) for k, v in spec.items()) for g in got)

        summary = ", ".join(
            f"{g['kind']}"
            + (f"[{g['rule']}]" if g["rule"] else "")
            + (f"({g['action']})" if g["action"] else "")
            for g in got
        )

        def facts_seen(spec: dict[str, Any]) -> str:
            if not isinstance(spec.get("facts"), dict):
                return ""
            seen = [
                {str(k): g["facts"].get(str(k)) for k in spec["facts"]}
                for g in got
                if g["facts"] and all(g.get(k) == v for k, v in spec.items() if k != "facts")
            ]
            return f" (with those facts: {_show(seen)})" if seen else ""

        out = [
            f"expected an entry {_show(spec)}; the journal has: {summary}{facts_seen(spec)}"
            for spec, _ in want["include"]
            if not match(spec)
        ]
        out += [
            f"expected no entry {_show(spec)}, but there is one"
            for spec, _ in want["exclude"]
            if match(spec)
        ]
        return out

    def c_cases(self, want: dict[str, Any], loc: Loc, view: CaseView | None) -> list[str]:
        rt = self.svc.company(self.company)
        q = select(t.case).where(t.case.c.company_id == rt.id).order_by(t.case.c.id)
        if "procedure" in want:
            q = q.where(t.case.c.procedure == want["procedure"])
        if "created_by" in want:
            q = q.where(t.case.c.created_by == want["created_by"])
        with self.svc.db.read() as conn:
            rows = conn.execute(q).all()
        out = []
        if "count" in want and len(rows) != want["count"]:
            out.append(
                f"expected {want['count']} case(s), found {len(rows)}: "
                + ", ".join(
                    f"{r.number} ({r.created_at.astimezone(self.tz):%Y-%m-%d %H:%M})" for r in rows
                )
            )
        for i, spec in enumerate(want.get("fields") or []):
            if i >= len(rows):
                out.append(f"case {i + 1}: no such case")
                continue
            for name, value in (spec or {}).items():
                if rows[i].fields.get(name) != value:
                    out.append(
                        f"case {i + 1} ({rows[i].number}): field '{name}' expected {_show(value)}, "
                        f"found {_show(rows[i].fields.get(name))}"
                    )
        return out

    def c_deadlines(
        self, want: dict[str, tuple[dict[str, Any], Loc]], loc: Loc, view: CaseView
    ) -> list[str]:
        found = {d.id: d for d in self.svc.deadlines(self.company, view.id)}
        out = []
        if not want and found:  # deadlines: {} — the case has none (e.g. a when: is false)
            out.append(f"expected no deadlines, found: {', '.join(sorted(found))}")
        for sid, (spec, _) in want.items():
            d = found.get(sid)
            if d is None:
                out.append(
                    f"no deadline '{sid}' (the pack has: {', '.join(sorted(found)) or 'none'})"
                )
                continue
            if "state" in spec and d.state != spec["state"]:
                out.append(
                    f"deadline '{sid}': expected state {spec['state']}, found {d.state}"
                    + (f" (due {self.local(d.due_at)})" if d.due_at else "")
                )
            for key, got in (("due", d.due_at), ("warn", d.warn_at), ("started", d.started_at)):
                if key not in spec:
                    continue
                if spec[key] is None:
                    if got is not None:
                        out.append(
                            f"deadline '{sid}': expected no {key} time, found {self.local(got)}"
                        )
                    continue
                moment = parse_moment(spec[key])
                assert moment is not None  # checked when parsed
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=self.tz)
                if got is None or got != moment:
                    out.append(
                        f"deadline '{sid}': expected {key} {self.local(moment)}, "
                        f"found {self.local(got) if got else 'none'}"
                    )
            if "target" in spec and str(d.target) != str(spec["target"]):
                out.append(f"deadline '{sid}': expected target {spec['target']}, found {d.target}")
            if "paused" in spec:
                paused = bool(d.pauses)
                if bool(spec["paused"]) != paused:
                    out.append(
                        f"deadline '{sid}': expected {'some' if spec['paused'] else 'no'} pauses, "
                        f"found {len(d.pauses)}"
                    )
        return out

    def c_timers(self, want: list[str], loc: Loc, view: CaseView) -> list[str]:
        with self.svc.db.read() as conn:
            found = sorted(x["kind"] for x in timers.pending(conn, case_id=view.id))
        if sorted(want) == found:
            return []
        return [f"expected pending timers {_show(sorted(want))}, found {_show(found)}"]

    def c_next_due(self, want: dt.datetime | bool, loc: Loc, view: CaseView) -> list[str]:
        got = view.next_due_at
        if want is False:
            return [] if got is None else [f"expected no next due time, found {self.local(got)}"]
        assert isinstance(want, dt.datetime)
        moment = want if want.tzinfo else want.replace(tzinfo=self.tz)
        if got != moment:
            found = self.local(got) if got else "none"
            return [f"expected next due {self.local(moment)}, found {found}"]
        return []

    def c_actions(
        self, want: list[tuple[dict[str, Any], Loc]], loc: Loc, view: CaseView | None
    ) -> list[str]:
        if view is None:
            return ["no case yet"]
        out = []
        for spec, _ in want:
            actor = self.svc.actor(self.company, spec["as"])
            names = [a.name for a in self.svc.available_actions(self.company, view.id, actor)]
            shown = ", ".join(names) or "none"
            missing = [a for a in spec.get("include") or [] if a not in names]
            extra = [a for a in spec.get("exclude") or [] if a in names]
            if missing:
                out.append(
                    f"{spec['as']} should be offered {', '.join(missing)}; is offered: {shown}"
                )
            if extra:
                out.append(
                    f"{spec['as']} should not be offered {', '.join(extra)}; is offered: {shown}"
                )
            if "only" in spec and sorted(spec["only"] or []) != sorted(names):
                out.append(
                    f"{spec['as']} should be offered exactly {_show(spec['only'])}; "
                    f"is offered: {shown}"
                )
        return out

    def c_linked(
        self, want: list[tuple[dict[str, Any], Loc]], loc: Loc, view: CaseView
    ) -> list[str]:
        found = self.linked(view.id)
        out = []
        for i, (spec, _) in enumerate(want):
            if i >= len(found):
                out.append(
                    f"expected linked case {i + 1} {_show(spec)}, found none "
                    f"(linked: {_show([_strip_id(f) for f in found]) if found else 'none'})"
                )
                continue
            have = found[i]
            diffs = [
                f"{k} {_show(v)} (it has {_show(have.get(k))})"
                for k, v in spec.items()
                if k != "name" and have.get(k) != v
            ]
            if diffs:
                out.append(f"linked case {i + 1}: expected {'; '.join(diffs)}")
            elif spec.get("name"):
                self.cases[str(spec["name"])] = have["id"]
                if have["id"] not in self.all_cases:
                    self.all_cases.append(have["id"])
        if len(found) > len(want):
            out.append(
                f"{len(found) - len(want)} more linked case(s) than expected: "
                f"{_show([_strip_id(f) for f in found[len(want) :]])}"
            )
        return out

    def linked(self, case_id: int) -> list[dict[str, Any]]:
        cl, c = t.case_link, t.case
        with self.svc.db.read() as conn:
            rows = conn.execute(
                select(
                    cl.c.to_case_id,
                    cl.c.link,
                    cl.c.rule_id,
                    c.c.procedure,
                    c.c.step,
                    c.c.status,
                    c.c.number,
                )
                .join(c, c.c.id == cl.c.to_case_id)
                .where(cl.c.from_case_id == case_id)
                .order_by(cl.c.id)
            ).all()
        return [
            {
                "id": r.to_case_id,
                "procedure": r.procedure,
                "link": r.link,
                "rule": r.rule_id,
                "step": r.step,
                "status": r.status,
                "number": r.number,
            }
            for r in rows
        ]

    # -- state for comparisons ----------------------------------------------------------------
    def snapshot(self, case_id: int) -> dict[str, Any]:
        v = self.svc.get_case(self.company, case_id)
        return {
            "number": v.number,
            "step": v.step,
            "status": v.status,
            "fields": v.fields,
            "assignees": v.assignees,
            "version": v.version,
        }

    def final_state(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        with self.svc.db.read() as conn:
            ids = [r.id for r in conn.execute(select(t.case.c.id).order_by(t.case.c.id)).all()]
        for cid in ids:
            snap = self.snapshot(cid)
            snap["journal"] = [
                {
                    **{k: e[k] for k in ("seq", "kind", "action", "rule_id", "actor", "facts")},
                    "data": _without_secrets(e["data"]),
                }
                for e in self.svc.journal(self.company, cid)
            ]
            snap["outbox"] = [_message(m) for m in self.svc.outbox(self.company, cid)]
            snap["linked"] = [_strip_id(x) for x in self.linked(cid)]
            out[snap["number"]] = snap
        return out


def _strip_id(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != "id"}


def _without_secrets(data: Any) -> Any:
    """A journal entry's data less the digests of one-time secrets (a customer link's
    token), which differ at every run: two runs of a scenario compare equal without them."""
    if not isinstance(data, Mapping):
        return data
    return {k: v for k, v in data.items() if k != "digest"}


def _message(m: Mapping[str, Any]) -> dict[str, Any]:
    payload = m.get("payload") or {}
    text = "\n".join(str(payload[k]) for k in ("subject", "body") if payload.get(k))
    if isinstance(payload.get("link"), str):  # a one-time link differs at every run
        text = text.replace(payload["link"], "<link>")
    return {
        "to": m["recipient"],
        "template": m["template"],
        "channel": m["channel"],
        "fields": dict(payload.get("fields") or {}),
        "text": text,
    }


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    if value is None:
        return "null (no value)"
    return repr(value)


def _describe_error(exc: KefuError) -> str:
    text_ = f"{exc.code}: {exc.message}"
    errors = exc.details.get("errors")
    if errors:
        text_ += " (" + ", ".join(f"{k}: {v}" for k, v in errors.items()) + ")"
    if exc.code == "refused-by-rule" and exc.details.get("rule"):
        text_ += f" [rule {exc.details['rule']}]"
    return text_


def _error_hint(exc: KefuError) -> str:
    if exc.code == "refused-by-rule":
        return "{rule: " + str(exc.details.get("rule")) + "}"
    if exc.code == "invalid-input" and exc.details.get("errors"):
        return "{invalid-input: [" + ", ".join(exc.details["errors"]) + "]}"
    return exc.code


def _expected_failure(checks: Mapping[str, tuple[Any, Loc]]) -> str:
    if "error" in checks:
        return f"error {checks['error'][0][0]}"
    want = checks["refused"][0]
    return "refused" + (f" by rule {want['rule']}" if "rule" in want else "")


# -- kefu test --------------------------------------------------------------------------------
def scenario_files(paths: Iterable[Path]) -> list[Path]:
    """The scenario files under ``paths``: scenario files, pack folders or folders of packs."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_file():
            out.append(p)
        elif p.name == SCENARIO_DIR:
            out.extend(sorted(p.glob("*.yaml")))
        elif (p / "procedure.yaml").is_file():
            out.extend(sorted((p / SCENARIO_DIR).glob("*.yaml")))
        else:
            for d in pack_dirs(p):
                out.extend(sorted((d / SCENARIO_DIR).glob("*.yaml")))
    seen: set[Path] = set()
    return [f for f in out if not (f.resolve() in seen or seen.add(f.resolve()))]  # type: ignore[func-returns-value]  # set.add is None: keeps first


def durable_available() -> bool:
    """Whether durable_rules' C module is installed (never imported here: it runs in a child)."""
    return importlib.util.find_spec("durable_rules_engine") is not None


def run_paths(
    paths: Sequence[Path | str],
    db_url: str | None = None,
    evaluator_kind: str | None = None,
    *,
    echo: Callable[[str], None] | None = None,
) -> int:
    """``kefu test``: run every scenario under ``paths`` on each evaluator; 0 if all pass.

    ``evaluator_kind`` None runs each scenario on durable_rules and on the reference
    evaluator (durable only where it is installed). Prints one ``PASS``/``FAIL`` line per
    scenario and engine, the reason under each failure, and a summary.
    """
    say = echo or click.echo
    files = scenario_files([Path(p) for p in paths])
    if not files:
        say(
            f"no scenarios under {', '.join(str(p) for p in paths)} "
            "(they live in rules/<pack>/scenarios/*.yaml)"
        )
        return 1
    engines = (
        [evaluator_kind]
        if evaluator_kind
        else [e for e in ENGINES if e != "durable" or durable_available()]
    )
    if not evaluator_kind and "durable" not in engines:
        say("note: durable_rules is not installed here; running the reference evaluator only")
    if db_url and db_url.startswith("sqlite") and len(files) * len(engines) > 1:
        say(
            f"{db_url}: a SQLite file holds one run; "
            "give one scenario and --engine, or a PostgreSQL URL"
        )
        return 1
    started = time.monotonic()
    passed = failed = 0
    evaluators: dict[str, Evaluator] = {}
    try:
        _plugins_loaded()
        for f in files:
            try:
                sc: Scenario | None = load_scenario(f)
            except ScenarioError as exc:
                sc = None
                for engine in engines:
                    failed += 1
                    say(f"FAIL {_display(f, None)}: (cannot load) [{engine}]")
                say(_indent(str(exc)))
            if sc is None:
                continue
            for engine in engines:
                if engine not in evaluators:
                    evaluators[engine] = make_evaluator(engine)
                try:
                    res = run_scenario(sc, db_url=db_url, evaluator=evaluators[engine])
                except ScenarioError as exc:
                    failed += 1
                    say(f"FAIL {sc.display}: {sc.title} [{engine}]")
                    say(_indent(str(exc)))
                except Exception as exc:  # a bug, in kefu or a plugin: report it, run the rest
                    failed += 1
                    say(f"FAIL {sc.display}: {sc.title} [{engine}]")
                    say(_indent("".join(traceback.format_exception(exc)).rstrip()))
                else:
                    passed += 1
                    say(f"PASS {sc.display}: {sc.title} [{engine}] ({res.seconds:.2f}s)")
    finally:
        for ev in evaluators.values():
            ev.close()
    took = time.monotonic() - started
    say(
        f"{passed} passed, {failed} failed: "
        f"{len(files)} scenario(s) on {', '.join(engines)} in {took:.1f}s"
    )
    return 1 if failed else 0


def _indent(text_: str) -> str:
    return "\n".join("    " + line for line in text_.splitlines())


__all__ = [
    "ScenarioError",
    "ScenarioFailed",
    "ScenarioInvalid",
    "ScenarioResult",
    "StepTrace",
    "fresh_database",
    "load_scenario",
    "run_paths",
    "run_scenario",
    "scenario_files",
    "temporary_pg_database",
]
