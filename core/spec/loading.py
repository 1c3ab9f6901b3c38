"""Loading and validating procedure packs and company configs.

``load_pack`` and ``load_company`` never raise on bad input: they return what they could
build plus a :class:`Diagnostics` list naming every problem with file:line:col, a stable
code and a hint (codes in docs/rule-files.md). ``compile_procedure`` turns a valid pack
and a company's parameters into a :class:`CompiledProcedure` the case service runs.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
import json
import re
import types
import typing
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, RootModel, ValidationError

from core.rules.derive import Derivations
from core.rules.durable_compiler import check_limits
from core.rules.expr import (
    UNKNOWN,
    UNKNOWN_KIND,
    ExprError,
    FieldType,
    did_you_mean,
    parse_condition,
    parse_value,
)
from core.rules.ir import TRUE, Cond, RuleSet, fields_of
from core.rules.ir import CompiledRule as IRRule
from core.rules.satisfiable import MAX_COMBINATIONS, PACK_BUDGET, can_hold, combinations
from core.spec.definitions import (
    COVER_RE,
    KEY_RE,
    NUMBERING_RE,
    PACK_RE,
    SYSTEM_FACTS,
    CompanyDef,
    EventRef,
    PackDef,
    ParameterDef,
    PromisedTarget,
)
from core.spec.diagnostics import Diagnostic, Diagnostics, Loc, YamlDoc, yaml_value
from core.spec.effects import BUILTIN_EFFECTS, EffectType, Problem
from core.spec.extensions import Extensions
from core.spec.procedures import (
    CompiledProcedure,
    CompiledRule,
    _raw_dict,
    _raw_keys,
    compile_procedure,
    pack_field_types,
)
from core.spec.roles import held_by_nobody
from core.spec.templates import problems
from core.time.calendars import WorkingCalendar
from core.time.durations import Duration, ParamDuration
from core.time.recurrence import check_on

PACK_FILE = "procedure.yaml"
#: the longest name an upload is made for, ``defects.photos`` (the ``field`` column of
#: core.storage.schema's attachment table)
ATTACHMENT_PATH_MAX = 64


def _hint_for(word: str, options: Iterable[str], what: str) -> str:
    opts = sorted(options)
    guess = did_you_mean(word, opts)
    shown = ", ".join(opts[:30]) + (", …" if len(opts) > 30 else "")
    return f"{what}: {shown or '(none)'}" + (f" (did you mean '{guess}'?)" if guess else "")


# -- schema problems ----------------------------------------------------------------------

_NAME_PATTERNS = {
    KEY_RE: "lower-case letters, digits and _, starting with a letter (e.g. quality_manager)",
    PACK_RE: "lower-case letters, digits and -, starting with a letter (e.g. repair-desk)",
    COVER_RE: "a field name, or list.field for one field of a list's items (e.g. actions.owner)",
}


def _data_loc(data: Any, loc: Sequence[str | int], kind: str) -> Loc:
    """pydantic's error ``loc`` as a path into ``data``.

    pydantic inserts parts that are not in the document (``[key]`` for a bad dict key,
    the name of a union branch or of a validator); they are dropped here.
    """
    node = data
    out: list[str | int] = []
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        elif last and kind == "missing" and isinstance(node, dict) and isinstance(part, str):
            out.append(part)
    return tuple(out)


def _pydantic_problems(
    doc: YamlDoc,
    exc: ValidationError,
    model: type[BaseModel],
    data: Any,
    base: Loc = (),
    code: str | None = None,
) -> Diagnostics:
    """Map pydantic's errors onto file positions: one diagnostic per problem and place.

    ``data`` is what was validated (it sits at ``base`` in the document); ``code``
    replaces the schema codes (K101-K103), e.g. K110 for an effect's arguments.
    """
    out = Diagnostics()
    seen: set[tuple[Loc, str]] = set()
    errors = exc.errors(include_url=False)
    # a misspelt required key is one mistake: its K102 says "did you mean", no K101 too
    meant: set[Loc] = set()
    for err in errors:
        if err["type"] == "extra_forbidden":
            rel = _data_loc(data, err["loc"], "extra_forbidden")
            guess = did_you_mean(str(rel[-1]), _allowed_keys(model, rel[:-1])) if rel else None
            if guess is not None:
                meant.add(rel[:-1] + (guess,))
    # a value matching no branch of a union (text or label) gets an error per branch;
    # when one branch got further into the value, its error is the one that helps
    placed = [(_data_loc(data, err["loc"], err["type"]), err) for err in errors]
    deeper = {rel[:n] for rel, _ in placed for n in range(len(rel))}
    for rel, err in placed:
        kind = err["type"]
        loc = base + rel
        if kind == "missing" and rel in meant:
            continue
        tagged = len([p for p in err["loc"] if p != "[key]"]) > len(rel) + (kind == "missing")
        if tagged and kind not in ("missing", "extra_forbidden") and rel in deeper:
            continue
        bad_key = "[key]" in err["loc"]
        group = kind if kind in ("missing", "extra_forbidden") else "value"
        if (loc, group) in seen:
            continue  # a union reports each branch; one message per place is enough
        seen.add((loc, group))
        if kind == "missing":
            name = loc[-1]
            allowed = _allowed_keys(model, rel[:-1])
            out.append(
                doc.diag(
                    loc[:-1],
                    code or "K101",
                    f"missing required key '{name}'",
                    f"add '{name}:' here"
                    + (f" (keys here: {', '.join(allowed)})" if allowed else ""),
                    key=True,
                )
            )
        elif kind == "extra_forbidden":
            name = str(loc[-1])
            allowed = _allowed_keys(model, rel[:-1])
            hint = _hint_for(name, allowed, "allowed keys here") if allowed else None
            split = doc.comma_split(loc)
            if split is not None:
                hint = _comma_hint(loc, *split)
            out.append(doc.diag(loc, code or "K102", f"unknown key '{name}'", hint, key=True))
        elif bad_key:
            pattern = (err.get("ctx") or {}).get("pattern")
            name = str(loc[-1]) if loc else "?"
            what = _NAME_PATTERNS.get(str(pattern), f"names must match {pattern}")
            out.append(
                doc.diag(
                    loc, code or "K103", f"'{name}' is not a valid name", f"use {what}", key=True
                )
            )
        else:
            out.append(doc.diag(loc, code or "K103", _message(err), _value_hint(err)))
    return out


def _comma_hint(loc: Loc, key: str, text: str) -> str:
    """The hint for a key an unquoted comma split off a text inside ``{…}``."""
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    owner = f"{loc[-2]}: " if len(loc) > 1 and isinstance(loc[-2], str) else ""
    return (
        f"a comma inside {{…}} starts a new key, so '{loc[-1]}' became a key of its own; "
        f'to keep the comma in the text, quote it: {owner}{{{key}: "{quoted}"}}'
    )


def _message(err: Any) -> str:
    kind, value = err["type"], err.get("input")
    pattern = (err.get("ctx") or {}).get("pattern")
    scalar = isinstance(value, str | int | float | bool | dt.date) or value is None
    if kind == "string_pattern_mismatch" and pattern in _NAME_PATTERNS:
        return f"{value!r} is not a valid name"
    if kind == "literal_error" and scalar:
        return f"{value!r} is not one of the allowed values"
    msg = err["msg"].removeprefix("Value error, ")
    if kind == "model_type" and (err.get("ctx") or {}).get("class_name") == "Label":
        msg = "Input should be a label"
    msg = re.sub(r" or instance of \w+", "", msg)  # pydantic's words for Python callers
    msg = msg[0].lower() + msg[1:]
    if scalar:
        return f"{msg}, not {yaml_value(value)}"
    if isinstance(value, list):
        return f"{msg}, not a list"
    if isinstance(value, dict):
        return f"{msg}, not a mapping"
    return f"{msg}, not a value of that type"


def _value_hint(err: Any) -> str | None:
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        guess = did_you_mean(str(value), options) if isinstance(value, str) else None
        return f"one of: {', '.join(options)}" + (f" (did you mean '{guess}'?)" if guess else "")
    if kind == "string_pattern_mismatch" and ctx.get("pattern") in _NAME_PATTERNS:
        return f"use {_NAME_PATTERNS[ctx['pattern']]}"
    if kind == "model_type" and ctx.get("class_name") == "Label":
        return "a label is a text (zh-CN) or {zh-CN: …, en: …}"
    if kind in ("model_type", "dict_type"):
        return "write a mapping here (key: value lines, or {key: value})"
    if kind == "list_type":
        return "write a list here: [a, b] or one '- item' per line"
    return None


def _allowed_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    """The keys the schema accepts in the mapping at ``loc`` (for did-you-mean hints)."""
    ann: Any = model
    for part in loc:
        ann = _step_into(ann, part)
        if ann is None:
            return []
    for option in _options(ann):
        if (
            isinstance(option, type)
            and issubclass(option, BaseModel)
            and not issubclass(option, RootModel)
        ):
            return [info.alias or name for name, info in option.model_fields.items()]
    return []


def _options(ann: Any) -> list[Any]:
    """The alternatives of a type: Annotated unwrapped, unions and RootModels flattened."""
    origin = typing.get_origin(ann)
    if origin is typing.Annotated:
        return _options(typing.get_args(ann)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [o for arg in typing.get_args(ann) for o in _options(arg)]
    if isinstance(ann, type) and issubclass(ann, RootModel):
        return _options(ann.model_fields["root"].annotation)
    return [ann]


def _step_into(ann: Any, part: str | int) -> Any:
    for option in _options(ann):
        if isinstance(option, type) and issubclass(option, BaseModel):
            fields = option.model_fields
            info = fields.get(str(part)) or next(
                (f for f in fields.values() if f.alias == part), None
            )
            if info is not None:
                return info.annotation
            continue
        origin = typing.get_origin(option)
        if origin is dict and isinstance(part, str):
            return typing.get_args(option)[1]
        if origin is list and isinstance(part, int):
            return typing.get_args(option)[0]
    return None


# -- keeping what is valid ---------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)

#: rounds of cutting before giving up (each round cuts every part pydantic rejects)
_MAX_ROUNDS = 50


@dataclass
class Salvaged(Generic[M]):
    """A model built from the valid parts of a document, and what had to be left out.

    pydantic reports every schema problem of a document at once but then builds nothing,
    and the cross-reference checks need a model. So the rejected parts are cut from a
    copy of the data — an unknown key alone, a wrong value (and its container when the
    value was required) — until the rest validates. ``broken`` holds the cut parts and
    the containers that lost something, as paths into the original document; checks
    that depend on them are skipped, so one mistake gives one diagnostic, not a cascade.
    """

    model: M | None
    #: the document as written has schema problems (reported by the caller)
    invalid: bool = False
    broken: set[Loc] = field(default_factory=set)
    #: original indices of the items left in each list that lost items, by list path
    index: dict[Loc, list[int]] = field(default_factory=dict)

    def orig(self, list_loc: Loc, i: int) -> int:
        """Index in the document of item ``i`` of the list at ``list_loc`` in the model."""
        idx = self.index.get(list_loc)
        return idx[i] if idx is not None and i < len(idx) else i

    def is_broken(self, loc: Loc) -> bool:
        """``loc`` or a part containing it was left out or is incomplete."""
        return any(loc[:n] in self.broken for n in range(len(loc) + 1))

    def touched(self, loc: Loc) -> bool:
        """``loc``, a part containing it or a part inside it was left out or is incomplete."""
        return self.is_broken(loc) or any(b[: len(loc)] == loc for b in self.broken)


def salvage(
    model: type[M],
    data: Any,
    placeholders: Mapping[str, tuple[Any, Any]],
    context: Mapping[str, Any] | None = None,
) -> Salvaged[M]:
    """Validate ``data``; on errors, cut the rejected parts until the rest validates.

    ``placeholders`` give, for each required top-level key, a value that validates and
    the value the model then carries instead (a neutral one the checks skip).
    """
    try:
        return Salvaged(model.model_validate(data, context=context))
    except ValidationError:
        pass
    data = copy.deepcopy(data)
    out: Salvaged[M] = Salvaged(None, invalid=True)
    replaced: dict[str, Any] = {}

    def original(cur: Loc) -> Loc:
        res: list[str | int] = []
        for part in cur:
            if isinstance(part, int):
                idx = out.index.get(tuple(res))
                res.append(idx[part] if idx is not None and part < len(idx) else part)
            else:
                res.append(part)
        return tuple(res)

    def cut(cur: Loc) -> bool:
        if len(cur) == 1 and isinstance(cur[0], str) and cur[0] in placeholders:
            if cur[0] in replaced:
                return False
            replaced[cur[0]] = placeholders[cur[0]][1]
            data[cur[0]] = copy.deepcopy(placeholders[cur[0]][0])
            return True
        if not cur:
            return False
        parent: Any = data
        for part in cur[:-1]:
            parent = parent[part]
        last = cur[-1]
        if isinstance(parent, list) and isinstance(last, int):
            idx = out.index.setdefault(original(cur[:-1]), list(range(len(parent))))
            del idx[last]
            del parent[last]
            return True
        if isinstance(parent, dict) and last in parent:
            del parent[last]
            return True
        return False

    for _ in range(_MAX_ROUNDS):
        try:
            inst = model.model_validate(data, context=context)
        except ValidationError as exc:
            cuts: set[Loc] = set()
            for err in exc.errors(include_url=False):
                kind = err["type"]
                cur = _data_loc(data, err["loc"], kind)
                hurt: Loc | None
                if kind == "extra_forbidden":
                    # the mapping lost a key (maybe a misspelt one it needed); at the top
                    # that would be the whole file, so only the section it resembles
                    guess = (
                        did_you_mean(str(cur[-1]), _allowed_keys(model, cur[:-1])) if cur else None
                    )
                    target, hurt = cur, (cur[:-1] if len(cur) > 1 else (guess,) if guess else None)
                elif kind == "missing" and len(cur) > 1:
                    target = hurt = cur[:-1]
                else:
                    target = hurt = cur
                if hurt is not None:
                    out.broken.add(original(hurt))
                cuts.add(target)
            # deepest first, later list items first: earlier cuts never move later ones
            order = sorted(
                cuts,
                key=lambda c: (
                    len(c),
                    [(0, p, "") if isinstance(p, int) else (1, 0, p) for p in c],
                ),
                reverse=True,
            )
            progress = False
            for target in order:
                if any(other != target and target[: len(other)] == other for other in cuts):
                    continue  # a containing part goes anyway
                progress = cut(target) or progress
            if not progress:
                return out
        else:
            if replaced:
                inst = inst.model_copy(update=replaced)
            out.model = inst
            return out
    return out


# -- packs --------------------------------------------------------------------------------


#: parses a pack's record templates at load time (rendering is core.cases.records)
RECORD_TEMPLATES = SandboxedEnvironment(autoescape=True)


@dataclass
class LoadedPack:
    """A pack that passed validation, with where it came from."""

    pack: PackDef
    path: Path
    raw: dict[str, Any]
    doc: YamlDoc

    @property
    def key(self) -> str:
        return self.pack.procedure


class _AnyField(dict[str, FieldType]):
    """Field types when the ``fields`` section itself is broken: every name is known."""

    def get(self, key: str, default: Any = None) -> FieldType:
        return super().get(key) or FieldType(UNKNOWN_KIND)

    def __getitem__(self, key: str) -> FieldType:
        return self.get(key)


def effect_registry(
    extensions: Extensions | None = None, extra: Iterable[EffectType] = ()
) -> dict[str, EffectType]:
    """The built-in effect types, those the plugins give (``extensions``), and ``extra``."""
    reg = {e.name: e for e in BUILTIN_EFFECTS}
    if extensions is not None:
        reg.update(extensions.effects)
    for e in extra:
        reg[e.name] = e
    return reg


_PACK_PLACEHOLDERS: dict[str, tuple[Any, Any]] = {
    "kefu": (1, 1),
    "procedure": ("broken", "broken"),
    "title": ("", None),
    "roles": ({"placeholder": {"label": ""}}, {}),
    "open": ({"role": []}, None),
    "start": ("broken", "broken"),
    "steps": ({"placeholder": {"label": "", "final": True}}, {}),
}


def load_pack(
    path: Path,
    effects: Mapping[str, EffectType] | None = None,
    display_root: Path | None = None,
    *,
    extensions: Extensions | None = None,
) -> tuple[LoadedPack | None, Diagnostics]:
    """Load ``rules/<pack>/procedure.yaml`` (``path`` is the folder or the file).

    Every problem of the file comes back in one run: schema problems, and every
    cross-reference, condition and engine-limit check that the valid parts allow.
    """
    file = path / PACK_FILE if path.is_dir() else path
    display = _display(file, display_root)
    diags = Diagnostics()
    doc = YamlDoc(file, display)
    if not doc.load(diags):
        return None, diags
    raw = doc.plain()
    ext = extensions or Extensions()
    sv = salvage(PackDef, raw, _PACK_PLACEHOLDERS, ext.validation_context())
    if sv.invalid:
        try:
            PackDef.model_validate(raw, context=ext.validation_context())
        except ValidationError as exc:
            diags.extend(_pydantic_problems(doc, exc, PackDef, raw))
    if sv.model is None:
        return None, _sorted(diags)
    pack = sv.model
    if (
        not sv.is_broken(("procedure",))
        and file.name == PACK_FILE
        and file.parent.name != pack.procedure
    ):
        diags.append(
            doc.diag(
                ("procedure",),
                "K118",
                f"the pack '{pack.procedure}' lives in folder '{file.parent.name}'",
                "name the folder after the procedure key",
                severity="warning",
            )
        )
    loaded = LoadedPack(pack, file, raw, doc)
    diags.extend(_PackChecker(loaded, effects or effect_registry(ext), sv, ext).run())
    diags = _sorted(diags)
    return (loaded if not diags.errors else None), diags


def _sorted(diags: Diagnostics) -> Diagnostics:
    """In file order, and every diagnostic with a hint (the docs explain every code)."""
    done = (
        d if d.hint else dataclasses.replace(d, hint=f"see {d.code} in docs/rule-files.md")
        for d in diags
    )
    return Diagnostics(sorted(done, key=lambda d: (d.file, d.line, d.col)))


def _display(file: Path, root: Path | None) -> str:
    try:
        return str(file.resolve().relative_to((root or Path.cwd()).resolve()))
    except ValueError:
        return str(file)


class _PackChecker:
    """The checks of one pack beyond its schema, skipping what depends on broken parts."""

    def __init__(
        self,
        lp: LoadedPack,
        effects: Mapping[str, EffectType],
        sv: Salvaged[PackDef],
        extensions: Extensions,
    ) -> None:
        self.pack, self.doc, self.raw, self.sv = lp.pack, lp.doc, lp.raw, sv
        self.effects, self.extensions = effects, extensions
        self.out = Diagnostics()
        # every name the author wrote counts as declared, even when its definition is
        # broken (that is reported once, where it is); None: the whole section is broken
        self.roles = self._names("roles", self.pack.roles)
        self.steps = self._names("steps", self.pack.steps)
        self.fields = self._names("fields", self.pack.fields)
        self.rule_conds: list[tuple[str, Cond, Loc]] = []
        self.guard_conds: list[tuple[str, Cond, Loc]] = []
        self.form_conds: list[tuple[str, Cond, Loc]] = []
        self.lint_budget = PACK_BUDGET  # combinations K138 may still try

    def _names(self, section: str, valid: Mapping[str, Any]) -> set[str] | None:
        written = _raw_keys(self.raw, section)
        if written is None or self.sv.is_broken((section,)):
            return None
        return set(valid) | written

    # -- references ---------------------------------------------------------------------
    def ref(
        self, loc: Loc, name: str, known: set[str] | None, code: str, what: str, hint_what: str
    ) -> None:
        if known is None or name in known:
            return
        self.out.append(
            self.doc.diag(loc, code, f"unknown {what} '{name}'", _hint_for(name, known, hint_what))
        )

    def refs(
        self,
        loc: Loc,
        names: Sequence[str],
        known: set[str] | None,
        code: str,
        what: str,
        hint_what: str,
    ) -> None:
        scalar = isinstance(self.doc.value_at(loc), str)  # role: agent (one name, no list)
        for i, name in enumerate(names):
            at = loc if scalar else loc + (self.sv.orig(loc, i),)
            self.ref(at, name, known, code, what, hint_what)

    def role_refs(self, loc: Loc, names: Sequence[str]) -> None:
        self.refs(loc, names, self.roles, "K104", "role", "roles in this pack")

    def field_refs(self, loc: Loc, names: Sequence[str]) -> None:
        self.refs(loc, names, self.fields, "K106", "field", "fields in this pack")

    def form(self, loc: Loc, ask: Sequence[str], require: Sequence[str]) -> None:
        """ask/require of a form: known fields, and every required field also listed in ask.

        The case service shows required fields even when ask: leaves them out (after the
        asked ones), so that is a warning: usually a field forgotten in ask:.
        """
        self.field_refs(loc + ("ask",), ask)
        self.field_refs(loc + ("require",), require)
        if self.sv.touched(loc + ("ask",)):
            return
        for i, name in enumerate(require):
            if name not in ask and (self.fields is None or name in self.fields):
                self.out.append(
                    self.doc.diag(
                        loc + ("require", self.sv.orig(loc + ("require",), i)),
                        "K115",
                        f"field '{name}' is required but not in ask:",
                        "the form still shows it, after the asked fields; "
                        f"list it in ask: to say where: ask: [{', '.join([*ask, name])}]",
                        severity="warning",
                    )
                )

    def check_templates(self) -> None:
        check_templates(self.doc, self.pack.templates, self.fields, self.out)

    # -- the checks -----------------------------------------------------------------------
    def run(self) -> Diagnostics:
        pack, doc, sv = self.pack, self.doc, self.sv
        if not sv.is_broken(("start",)):
            self.ref(("start",), pack.start, self.steps, "K105", "step", "steps in this pack")
        if not sv.is_broken(("open",)):
            self.role_refs(("open", "role"), pack.open.role)
            self.form(("open",), pack.open.ask, pack.open.require)
        self.check_fields()
        self.check_parameters()
        self.types: Mapping[str, FieldType] = self.field_types()
        self.params = self.param_values()
        self.derived = Derivations()
        self.check_derive()
        self.check_steps()
        self.check_reachability()
        self.check_rules()
        self.check_documents()
        self.check_reports()
        self.check_time()
        self.check_templates()
        self.check_limits()
        if not self.out.errors and not sv.invalid:
            try:
                compile_procedure(pack, {}, company="validate", effects=self.effects)
            except Exception as exc:  # the checks above should make this unreachable
                self.out.append(
                    doc.diag(
                        (),
                        "K199",
                        f"cannot compile: {exc}",
                        "this is a kefu bug: please report the pack",
                    )
                )
        return self.out

    def check_documents(self) -> None:
        """Attachment limits, ``signatures:``, the actions that sign and ``records:``."""
        pack, sigs = self.pack, set(self.pack.signatures)
        for name, f in pack.fields.items():
            for key in ("max_size", "max_files", "accept"):
                if getattr(f, key) is not None and f.type != "attachment":
                    self.out.append(
                        self.doc.diag(
                            ("fields", name, key),
                            "K160",
                            f"{key}: applies to attachment fields, not {f.type}",
                            f"remove {key}:, or make it type: attachment",
                            key=True,
                        )
                    )
            if f.score is not None and f.type not in ("integer", "number"):
                self.out.append(
                    self.doc.diag(
                        ("fields", name, "score"),
                        "K165",
                        f"score: {f.score} is for integer or number fields, not {f.type}",
                        "make the field type: integer (with min: and max:)",
                        key=True,
                    )
                )
        for sname, sig in pack.signatures.items():
            loc: Loc = ("signatures", sname)
            self.check_covers(loc + ("covers",), sig.covers)
            self.role_refs(loc + ("roles",), sig.roles)
            if not any(a.sign == sname for st in pack.steps.values() for a in st.actions.values()):
                self.out.append(
                    self.doc.diag(
                        loc,
                        "K162",
                        f"no action signs '{sname}'",
                        f"add sign: {sname} to the action that signs it",
                        key=True,
                        severity="warning",
                    )
                )
        for stname, st in pack.steps.items():
            for aname, a in st.actions.items():
                if a.sign is not None:
                    self.ref(
                        ("steps", stname, "actions", aname, "sign"),
                        a.sign,
                        sigs,
                        "K161",
                        "signature",
                        "signatures in this pack",
                    )
        if pack.retain is not None:
            self.field_refs(("retain", "anonymise"), pack.retain.anonymise)
            hold = pack.retain.hold
            if hold is not None:
                hdef = pack.fields.get(hold)
                if hdef is None or hdef.type != "boolean":
                    self.out.append(
                        self.doc.diag(
                            ("retain", "hold"),
                            "K163",
                            f"hold: names '{hold}', which is not a boolean field of this pack",
                            "declare a boolean field (e.g. legal_hold) set by an action",
                        )
                    )
        for rname, rec in pack.records.items():
            self.field_refs(("records", rname, "fields"), rec.fields)
            self.check_record_template(rname)
            if rec.signatures is not None:
                self.refs(
                    ("records", rname, "signatures"),
                    rec.signatures,
                    sigs,
                    "K161",
                    "signature",
                    "signatures in this pack",
                )

    def check_reports(self) -> None:
        """``reports:``: rows by a choice or boolean field (K170), columns counting actions
        of the pack (K171) among the cases their conditions pick, which see the case as
        it is, not an event (K172)."""
        actions = self._actions()
        for rname, rep in self.pack.reports.items():
            loc: Loc = ("reports", rname)
            if rep.by is not None:
                self.ref(loc + ("by",), rep.by, self.fields, "K106", "field", "fields in this pack")
                fdef = self.pack.fields.get(rep.by)
                if fdef is not None and (fdef.type not in ("choice", "boolean") or fdef.multiple):
                    self.out.append(
                        self.doc.diag(
                            loc + ("by",),
                            "K170",
                            f"'{rep.by}' is {_a(fdef.type)} field: a report's rows are "
                            "the values of a single choice or a boolean field",
                            "choose a choice field without multiple: true, or a boolean field",
                        )
                    )
            for cname, col in rep.columns.items():
                cloc = loc + ("columns", cname)
                if not isinstance(col.count, str):
                    self.ref(
                        cloc + ("count", "action"),
                        col.count.action,
                        actions,
                        "K171",
                        "action",
                        "actions in this pack",
                    )
                if col.when is None:
                    continue
                cond = self.expr(cloc + ("when",), col.when)
                if cond is None:
                    continue
                events = sorted(set(fields_of(cond)) & {"event", "action", "from_step"})
                if events:
                    self.out.append(
                        self.doc.diag(
                            cloc + ("when",),
                            "K172",
                            f"a report's condition cannot use {', '.join(events)}: it "
                            "counts cases as they are, not as an action leaves them",
                            "test the case's fields and step; count an action with "
                            "count: {action: name}",
                        )
                    )

    def check_covers(self, loc: Loc, covers: Sequence[str]) -> None:
        """A signature's ``covers``: fields, or ``list.field`` — a field of a list's items."""
        self.field_refs(loc, [c.partition(".")[0] for c in covers])
        for i, cover in enumerate(covers):
            name, _, sub = cover.partition(".")
            fdef = self.pack.fields.get(name)
            if not sub or fdef is None:
                continue
            at = loc + (self.sv.orig(loc, i),)
            if fdef.type != "list" or fdef.of is None:
                self.out.append(
                    self.doc.diag(
                        at,
                        "K133",
                        f"'{cover}' covers a field of a list's items, but '{name}' is not a list",
                        f"cover the whole field: {name}",
                    )
                )
            elif sub not in fdef.of:
                self.out.append(
                    self.doc.diag(
                        at,
                        "K106",
                        f"the items of '{name}' have no field '{sub}'",
                        _hint_for(sub, set(fdef.of), f"fields of the items of {name}"),
                    )
                )

    def check_record_template(self, name: str) -> None:
        """A pack's ``records/<name>.html``: valid Jinja (K164), located in that file."""
        path = self.doc.path.parent / "records" / f"{name}.html"
        if not path.is_file():
            return
        where = str(Path(self.doc.display).parent / "records" / path.name)
        try:
            RECORD_TEMPLATES.parse(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            self.out.append(Diagnostic(where, 1, 1, "K164", f"cannot read the template: {exc}"))
        except TemplateSyntaxError as exc:
            self.out.append(
                Diagnostic(
                    where,
                    exc.lineno or 1,
                    1,
                    "K164",
                    f"record template: {exc.message}",
                    "fix the Jinja at this line; {{ doc.title }} inserts the record's title",
                )
            )

    def check_fields(self) -> None:
        for name, f in self.pack.fields.items():
            loc: Loc = ("fields", name)
            if self.sv.touched(loc):
                continue
            if f.type == "choice" and not f.choices:
                self.out.append(
                    self.doc.diag(
                        loc,
                        "K107",
                        "a choice field needs choices",
                        "choices: [high, medium, low]",
                        key=True,
                    )
                )
            if f.type != "choice" and f.choices:
                self.out.append(
                    self.doc.diag(
                        loc + ("choices",),
                        "K107",
                        f"choices only apply to choice fields, not {f.type}",
                        "remove choices:, or make it type: choice",
                        key=True,
                    )
                )
            written = self.doc.value_at(loc + ("choices",))
            if isinstance(written, list):
                seen: dict[str, int] = {}
                for i, c in enumerate(written):
                    if str(c) in seen:
                        self.out.append(
                            self.doc.diag(
                                loc + ("choices", i),
                                "K107",
                                f"choice '{c}' is listed twice",
                                f"it is item {seen[str(c)] + 1} already",
                            )
                        )
                    seen.setdefault(str(c), i)
            if f.min is not None and f.max is not None and f.min > f.max:
                self.out.append(
                    self.doc.diag(loc + ("min",), "K111", f"min {f.min:g} is above max {f.max:g}")
                )
            self.check_list(loc, f)

    def check_list(self, loc: Loc, f: Any) -> None:
        """``type: list``: its ``of:`` sub-fields, item counts and required sub-fields."""

        def problem(where: Loc, message: str, hint: str) -> None:
            self.out.append(self.doc.diag(where, "K133", message, hint, key=True))

        if f.type != "list":
            for key in ("of", "min_items", "max_items", "require"):
                if getattr(f, key):
                    problem(
                        loc + (key,),
                        f"{key}: is for list fields, not {f.type}",
                        f"remove {key}:, or make it type: list",
                    )
            return
        if not f.of:
            problem(
                loc,
                "a list field needs of: the fields of each item",
                "of: {room: {type: text, label: 房间}}",
            )
            return
        for sub, sdef in f.of.items():
            if sdef.type == "list":
                problem(
                    loc + ("of", sub, "type"),
                    "a list inside a list is not supported",
                    "make a second list field, or a text field inside the item",
                )
            if sdef.type == "attachment" and len(f"{loc[-1]}.{sub}") > ATTACHMENT_PATH_MAX:
                self.out.append(
                    self.doc.diag(
                        loc + ("of", sub),
                        "K175",
                        f"uploads for the items' attachment field are made for "
                        f"'{loc[-1]}.{sub}', longer than {ATTACHMENT_PATH_MAX} characters",
                        "shorten the list's or the item field's name",
                        key=True,
                    )
                )
            if sdef.type == "choice" and not sdef.choices:
                self.out.append(
                    self.doc.diag(
                        loc + ("of", sub),
                        "K107",
                        "a choice field needs choices",
                        "choices: [open, fixed]",
                        key=True,
                    )
                )
        if f.min_items is not None and f.max_items is not None and f.min_items > f.max_items:
            problem(
                loc + ("min_items",),
                f"min_items {f.min_items} is above max_items {f.max_items}",
                "lower min_items or raise max_items",
            )
        for i, name in enumerate(f.require):
            if name not in f.of:
                self.out.append(
                    self.doc.diag(
                        loc + ("require", i),
                        "K133",
                        f"'{name}' is not a field of the items",
                        _hint_for(name, list(f.of), "fields of each item"),
                    )
                )

    def check_parameters(self) -> None:
        for pname, p in self.pack.parameters.items():
            if not self.sv.touched(("parameters", pname)) and not param_fits(p.type, p.default):
                self.out.append(
                    self.doc.diag(
                        ("parameters", pname, "default"),
                        "K111",
                        f"default {yaml_value(p.default)} is not {_a(p.type)}",
                        _param_hint(p.type),
                    )
                )

    def field_types(self) -> Mapping[str, FieldType]:
        types_ = pack_field_types(self.pack, self.raw)
        if self.sv.touched(("steps",)) and not self._edges_readable():
            types_["action"] = FieldType(UNKNOWN_KIND)  # some action names cannot be read
        for name in _raw_keys(self.raw, "fields") or ():
            if name not in self.pack.fields or self.sv.touched(("fields", name)):
                types_[name] = FieldType(UNKNOWN_KIND)
        if self.fields is None:
            return _AnyField(types_)
        return types_

    def param_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {name: UNKNOWN for name in _raw_keys(self.raw, "parameters") or ()}
        for name, p in self.pack.parameters.items():
            fits = param_fits(p.type, p.default) and not self.sv.touched(("parameters", name))
            values[name] = p.default if fits else UNKNOWN
        return values

    def require_when(self, loc: Loc, where: str, require_when: Mapping[str, str]) -> None:
        """``require_when: {field: condition}``: known fields, valid conditions."""
        for fname, when in require_when.items():
            if self.fields is not None and fname not in self.fields:
                self.out.append(
                    self.doc.diag(
                        loc + (fname,),
                        "K106",
                        f"unknown field '{fname}'",
                        _hint_for(fname, self.fields, "fields in this pack"),
                        key=True,
                    )
                )
            cond = self.expr(loc + (fname,), when)
            if cond is not None:
                self.form_conds.append((f"{where}.{fname}", cond, loc + (fname,)))

    def check_steps(self) -> None:
        doc, sv = self.doc, self.sv
        checked_shared: set[str] = set()
        if not sv.is_broken(("open",)):
            self.require_when(("open", "require_when"), "open", self.pack.open.require_when)
        for sname, step in self.pack.steps.items():
            sloc: Loc = ("steps", sname)
            self.role_refs(sloc + ("role",), step.role)
            if not sv.touched(sloc):
                if step.final and step.actions:
                    self.out.append(
                        doc.diag(
                            sloc + ("actions",),
                            "K113",
                            "a final step has no actions",
                            "remove the actions or 'final: true'",
                            key=True,
                        )
                    )
                if step.wait_for is not None:
                    self.ref(
                        sloc + ("wait_for", "to"),
                        step.wait_for.to,
                        self.steps,
                        "K105",
                        "step",
                        "steps in this pack",
                    )
                if not step.final and not step.actions and step.wait_for is None:
                    self.out.append(
                        doc.diag(
                            sloc,
                            "K113",
                            "this step has no actions and is not final: "
                            "cases would stay here forever",
                            "add an action, or mark it 'final: true'",
                            key=True,
                        )
                    )
                if (
                    not step.final
                    and not step.role
                    and any(not a.role for a in step.actions.values())
                ):
                    self.out.append(
                        doc.diag(
                            sloc,
                            "K104",
                            "nobody may act here: give the step a role",
                            "role: <a role of this pack>",
                            key=True,
                        )
                    )
            own = set(_raw_dict(_raw_dict(self.raw, "steps").get(sname), "actions"))
            for i, used in enumerate(step.use):
                if used not in self.pack.actions:
                    self.out.append(
                        doc.diag(
                            sloc + ("use", i),
                            "K135",
                            f"unknown shared action '{used}'",
                            _hint_for(used, list(self.pack.actions), "the pack's actions:"),
                        )
                    )
                elif used in own:
                    self.out.append(
                        doc.diag(
                            sloc + ("use", i),
                            "K135",
                            f"step '{sname}' has its own action '{used}' too",
                            "rename one of them, or drop it from use:",
                        )
                    )
            for aname, action in step.actions.items():
                aloc: Loc = sloc + ("actions", aname)
                if aname not in own:  # a shared action: checked once, where it is written
                    if aname in checked_shared:
                        continue
                    checked_shared.add(aname)
                    aloc = ("actions", aname)
                if isinstance(action.to, str):
                    self.ref(
                        aloc + ("to",), action.to, self.steps, "K105", "step", "steps in this pack"
                    )
                elif isinstance(action.to, list):
                    self.check_branches(aloc, f"{sname}.{aname}", action.to)
                self.require_when(aloc + ("require_when",), f"{sname}.{aname}", action.require_when)
                if action.role:
                    self.role_refs(aloc + ("role",), action.role)
                self.form(aloc, action.ask, action.require)
                if action.not_by:
                    self.check_not_by(aloc, action.not_by)
                if action.guard is not None:
                    cond = self.expr(aloc + ("guard",), action.guard)
                    if cond is not None:
                        self.guard_conds.append((f"{sname}.{aname}", cond, aloc + ("guard",)))

    def check_branches(self, aloc: Loc, where: str, branches: Sequence[Any]) -> None:
        """``to:`` branches: known steps, conditions, exactly one default, last."""
        for i, branch in enumerate(branches):
            bloc = aloc + ("to", i)
            self.ref(bloc + ("to",), branch.to, self.steps, "K105", "step", "steps in this pack")
            if branch.when is not None:
                cond = self.expr(bloc + ("when",), branch.when)
                if cond is not None:
                    self.form_conds.append((f"{where}.to.{i}", cond, bloc + ("when",)))
            elif i < len(branches) - 1:
                self.out.append(
                    self.doc.diag(
                        bloc,
                        "K134",
                        "a branch without when: comes before other branches: they are never taken",
                        "put the default branch (the one without when:) last",
                    )
                )
        if branches and all(b.when is not None for b in branches):
            self.out.append(
                self.doc.diag(
                    aloc + ("to",),
                    "K134",
                    "the branches have no default: a case no branch matches has nowhere to go",
                    "end the list with a branch without when:, e.g. - {to: review}",
                    key=True,
                )
            )

    def check_reachability(self) -> None:
        """Steps no action and no rule leads to (from the document, broken parts too).

        A misspelt step name counts as the step it most resembles: it is reported as
        unknown already, and the step it meant is not unreachable.
        """
        pack, sv, steps = self.pack, self.sv, self.steps
        if sv.is_broken(("start",)) or steps is None or sv.touched(("rules",)):
            return  # a rule left out might have moved cases anywhere
        names = sorted(steps)

        def resolve(name: Any) -> str | None:
            if not isinstance(name, str):
                return None
            return name if name in steps else did_you_mean(name, names)

        start = resolve(pack.start)
        if start is None or sv.touched(("steps",)) and not self._edges_readable():
            return
        edges: dict[str, set[str]] = {}
        shared = _raw_dict(self.raw, "actions")
        for sname, sdef in _raw_dict(self.raw, "steps").items():
            used = sdef.get("use") if isinstance(sdef, dict) else None
            adefs = list(_raw_dict(sdef, "actions").values()) + [
                shared[u] for u in (used if isinstance(used, list) else ()) if u in shared
            ]
            for adef in adefs:
                for target in _targets(adef.get("to") if isinstance(adef, dict) else None):
                    to = resolve(target)
                    if to is not None:
                        edges.setdefault(str(sname), set()).add(to)
            wait = sdef.get("wait_for") if isinstance(sdef, dict) else None
            to = resolve(wait.get("to")) if isinstance(wait, dict) else None
            if to is not None:  # the last linked case closing moves the case on
                edges.setdefault(str(sname), set()).add(to)
        seen = {start}
        rules = self.raw.get("rules")
        effect_lists = [
            rule.get("then") if isinstance(rule, dict) else None
            for rule in (rules if isinstance(rules, list) else ())
        ]
        # timers, schedules and SLA escalations move cases too
        for section in ("timers", "schedules"):
            for timer in _raw_dict(self.raw, section).values():
                effect_lists.append(timer.get("then") if isinstance(timer, dict) else None)
        slas = list(_raw_dict(self.raw, "slas").values()) + [
            sdef.get("sla")
            for sdef in _raw_dict(self.raw, "steps").values()
            if isinstance(sdef, dict)
        ]
        for sla in slas:
            if isinstance(sla, dict):
                effect_lists += [sla.get("on_warning"), sla.get("on_breach")]
        for effects in effect_lists:
            for eff in effects if isinstance(effects, list) else ():
                if not isinstance(eff, dict):
                    return  # reported; it might have been a move
                for name, target in eff.items():
                    if name == "move" or (
                        name not in self.effects
                        and did_you_mean(str(name), list(self.effects)) == "move"
                    ):
                        moved = resolve(target)
                        if moved is None:
                            return  # a move whose target cannot be read: reported already
                        seen.add(moved)
        todo = list(seen)
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        for sname in pack.steps:
            if sname not in seen and not sv.touched(("steps", sname)):
                self.out.append(
                    self.doc.diag(
                        ("steps", sname),
                        "K112",
                        "no action or rule leads to this step",
                        "add an action with 'to: " + sname + "', a rule that moves here, "
                        "or remove the step",
                        severity="warning",
                        key=True,
                    )
                )

    def _edges_readable(self) -> bool:
        """Every action and its ``to:`` can be read, even though some step is broken."""
        step_keys, action_keys = (
            set(_allowed_keys(PackDef, ("steps", "x"))),
            set(_allowed_keys(PackDef, ("steps", "x", "actions", "y"))),
        )
        for sdef in _raw_dict(self.raw, "steps").values():
            if not isinstance(sdef, dict) or not set(sdef) <= step_keys:
                return False
            actions = sdef.get("actions", {})
            if not isinstance(actions, dict):
                return False
            for adef in actions.values():
                if not isinstance(adef, dict) or not set(adef) <= action_keys:
                    return False
                if "to" in adef and not (
                    isinstance(adef["to"], str)
                    or (
                        isinstance(adef["to"], list)
                        and all(
                            isinstance(b, dict) and isinstance(b.get("to"), str) for b in adef["to"]
                        )
                    )
                ):
                    return False
        return True

    def check_rules(self) -> None:
        doc, sv = self.doc, self.sv
        seen_ids: dict[str, int] = {}
        for k, rule in enumerate(self.pack.rules):
            i = sv.orig(("rules",), k)
            rloc: Loc = ("rules", i)
            if rule.id in seen_ids:
                self.out.append(
                    doc.diag(
                        rloc + ("id",),
                        "K108",
                        f"duplicate rule id '{rule.id}'",
                        f"rules[{seen_ids[rule.id]}] has the same id; "
                        "ids name rules in the journal",
                    )
                )
            seen_ids.setdefault(rule.id, i)
            if rule.when is not None:
                cond = self.expr(rloc + ("when",), rule.when)
                if cond is not None:
                    self.rule_conds.append((rule.id, cond, rloc + ("when",)))
            else:
                self.rule_conds.append((rule.id, TRUE, rloc))
            for j, eff in enumerate(rule.then):
                self.check_effect(rloc + ("then", sv.orig(rloc + ("then",), j)), eff)

    # -- SLAs and timers -----------------------------------------------------------------
    def _actions(self) -> set[str] | None:
        if self.steps is None or (self.sv.touched(("steps",)) and not self._edges_readable()):
            return None
        return {a for st in self.pack.steps.values() for a in st.actions}

    def event_ref(self, loc: Loc, ev: Any, actions: set[str] | None) -> None:
        if not isinstance(ev, EventRef):
            return
        if ev.step is not None:
            self.ref(loc + ("step",), ev.step, self.steps, "K127", "step", "steps in this pack")
        for i, st in enumerate(ev.steps or ()):
            self.ref(loc + ("steps", i), st, self.steps, "K127", "step", "steps in this pack")
        if ev.action is not None:
            self.ref(
                loc + ("action",), ev.action, actions, "K127", "action", "actions in this pack"
            )
        if ev.field is not None:
            self.moment_field(loc + ("field",), ev.field)

    def moment_field(self, loc: Loc, name: str) -> None:
        self.ref(loc, name, self.fields, "K127", "field", "fields in this pack")
        fdef = self.pack.fields.get(name)
        if fdef is not None and fdef.type not in ("date", "datetime"):
            self.out.append(
                self.doc.diag(
                    loc,
                    "K128",
                    f"field '{name}' is a {fdef.type} field, not a moment",
                    "point at a date or datetime field",
                )
            )

    def check_sla(self, loc: Loc, sla: Any, actions: set[str] | None, step: str | None) -> None:
        doc = self.doc
        if step is None:
            self.event_ref(loc + ("start",), sla.start, actions)
            self.event_ref(loc + ("stop",), sla.stop, actions)
            if sla.start == sla.stop:
                self.out.append(
                    doc.diag(
                        loc + ("stop",),
                        "K130",
                        "the SLA stops when it starts",
                        "stop it at a later moment (an action, a step, closed)",
                    )
                )
        elif self.pack.steps[step].final:
            self.out.append(
                doc.diag(
                    loc,
                    "K130",
                    f"step '{step}' is final: its SLA could never run",
                    "put the SLA on a step where work happens",
                )
            )
        target = sla.target
        if isinstance(target, PromisedTarget):
            self.moment_field(loc + ("target", "field"), target.field)
        elif isinstance(target, list):
            for i, row in enumerate(target):
                if row.when is not None:
                    self.expr(loc + ("target", i, "when"), row.when)
                if row.promised is not None:
                    self.moment_field(loc + ("target", i, "promised", "field"), row.promised.field)
            if target and target[-1].when is not None:
                self.out.append(
                    doc.diag(
                        loc + ("target", len(target) - 1),
                        "K129",
                        "the last row has a condition: a case no row matches has no deadline",
                        "end the table with a row without when:",
                        severity="warning",
                    )
                )
        if sla.when is not None:
            self.expr(loc + ("when",), sla.when)
        if sla.pause is not None:
            for i, st in enumerate(sla.pause.steps):
                self.ref(
                    loc + ("pause", "steps", i),
                    st,
                    self.steps,
                    "K127",
                    "step",
                    "steps in this pack",
                )
            if sla.pause.while_:
                self.expr(loc + ("pause", "while"), sla.pause.while_)
            if self.steps is not None and set(sla.pause.steps) >= {
                n for n, st in self.pack.steps.items() if not st.final
            }:
                self.out.append(
                    doc.diag(
                        loc + ("pause",),
                        "K130",
                        "the SLA is paused at every step",
                        "pause it only where the case waits for someone outside",
                    )
                )
        ext = sla.extension
        if ext is not None:
            self.ref(
                loc + ("extension", "action"),
                ext.action,
                actions,
                "K127",
                "action",
                "actions in this pack",
            )
            self.ref(
                loc + ("extension", "reason"),
                ext.reason,
                self.fields,
                "K127",
                "field",
                "fields in this pack",
            )
            requiring = [
                a
                for st in self.pack.steps.values()
                for n, a in st.actions.items()
                if n == ext.action
            ]
            if requiring and not any(ext.reason in a.require for a in requiring):
                self.out.append(
                    doc.diag(
                        loc + ("extension", "reason"),
                        "K131",
                        f"action '{ext.action}' does not require field '{ext.reason}'",
                        f"add {ext.reason} to the require: of action {ext.action}, so the "
                        "reason for the extension is always recorded",
                    )
                )
        for key in ("on_warning", "on_breach"):
            for j, eff in enumerate(getattr(sla, key)):
                self.check_effect(loc + (key, j), eff)

    def duration(self, loc: Loc, d: Any, before: bool = False) -> None:
        """A duration of the pack: ``param.<name>`` names a duration parameter (K136);
        ``before:`` takes elapsed or calendar time (K137)."""
        if isinstance(d, ParamDuration):
            pdef = self.pack.parameters.get(d.name)
            if pdef is None or pdef.type != "duration":
                durations = sorted(
                    n for n, p in self.pack.parameters.items() if p.type == "duration"
                )
                self.out.append(
                    self.doc.diag(
                        loc,
                        "K136",
                        f"'param.{d.name}' is not a duration parameter of this pack"
                        + (f" (it is {_a(pdef.type)})" if pdef is not None else ""),
                        _hint_for(d.name, durations, "duration parameters")
                        if durations
                        else "declare it: parameters: {"
                        + d.name
                        + ": {type: duration, default: 24h}}",
                    )
                )
                return
            if not param_fits("duration", pdef.default):
                return  # its default is reported (K111)
            d = Duration.parse(pdef.default)
        if before and isinstance(d, Duration) and d.kind not in ("elapsed", "calendar"):
            self.out.append(
                self.doc.diag(
                    loc,
                    "K137",
                    f"before: takes elapsed or calendar time, not '{d}'",
                    "write e.g. before: 15min or before: 1 day",
                )
            )

    def sla_durations(self, loc: Loc, sla: Any) -> None:
        target = sla.target
        if isinstance(target, PromisedTarget):
            self.duration(loc + ("target", "max"), target.max)
        elif isinstance(target, list):
            for i, row in enumerate(target):
                if row.target is not None:
                    self.duration(loc + ("target", i, "target"), row.target)
                if row.promised is not None:
                    self.duration(loc + ("target", i, "promised", "max"), row.promised.max)
        else:
            self.duration(loc + ("target",), target)
        if sla.extension is not None:
            self.duration(loc + ("extension", "target"), sla.extension.target)

    def check_time(self) -> None:
        pack, doc = self.pack, self.doc
        actions = self._actions()
        for sid, sla in pack.slas.items():
            if sla is None or self.sv.is_broken(("slas", sid)):
                continue
            if sid in pack.steps and pack.steps[sid].sla is not None:
                self.out.append(
                    doc.diag(
                        ("slas", sid),
                        "K131",
                        f"SLA id '{sid}' is also step '{sid}' with its own sla:",
                        "a step's sla: is named after the step: rename this one",
                        key=True,
                    )
                )
            self.check_sla(("slas", sid), sla, actions, None)
            self.sla_durations(("slas", sid), sla)
        for sname, sdef in pack.steps.items():
            if sdef.sla is not None and not self.sv.is_broken(("steps", sname, "sla")):
                self.check_sla(("steps", sname, "sla"), sdef.sla, actions, sname)
                self.sla_durations(("steps", sname, "sla"), sdef.sla)
        for tid, timer in pack.timers.items():
            if self.sv.is_broken(("timers", tid)):
                continue
            tloc: Loc = ("timers", tid)
            self.event_ref(tloc + ("from",), timer.from_, actions)
            if timer.after is not None:
                self.duration(tloc + ("after",), timer.after)
            if timer.before is not None:  # written as before:, or as a negative after:
                written = (
                    "before" if "before" in _raw_dict(self.raw, "timers").get(tid, {}) else "after"
                )
                self.duration(tloc + (written,), timer.before, before=True)
            if timer.when is not None:
                self.expr(tloc + ("when",), timer.when)
            if timer.while_ is not None:
                self.while_steps(tloc, timer.while_)
            for j, eff in enumerate(timer.then):
                self.check_effect(tloc + ("then", j), eff)
        for name, sched in pack.schedules.items():
            if self.sv.is_broken(("schedules", name)):
                continue
            self.check_schedule(("schedules", name), sched, actions)

    def while_steps(self, loc: Loc, pause: Any) -> None:
        """``while: {steps: [...]}`` / ``{while: "<condition>"}`` of a timer or schedule."""
        for i, wstep in enumerate(pause.steps):
            self.ref(
                loc + ("while", "steps", i),
                wstep,
                self.steps,
                "K127",
                "step",
                "steps in this pack",
            )
        if pause.while_:
            self.expr(loc + ("while", "while"), pause.while_)

    def check_schedule(self, loc: Loc, sched: Any, actions: set[str] | None) -> None:

        doc = self.doc
        if sched.from_ is not None:
            self.event_ref(loc + ("from",), sched.from_, actions)
        if isinstance(sched.every, str):
            problem = check_on(sched.every, sched.on)
            if problem:
                self.out.append(doc.diag(loc + ("on",), "K450", problem))
        elif sched.on is not None:
            self.out.append(
                doc.diag(
                    loc + ("on",),
                    "K450",
                    "on: is for calendar schedules; phases count from: their event",
                    "remove on: (the occurrences fall on the event's day of the month)",
                )
            )
        opening = sched.open or {}
        for k in opening:
            if k != "fields":
                self.out.append(
                    doc.diag(
                        loc + ("open", k),
                        "K451",
                        f"unknown key '{k}' under open:",
                        "open: takes fields: {field: value}",
                        key=True,
                    )
                )
        fields = opening.get("fields") or {}
        if not isinstance(fields, dict):
            self.out.append(
                doc.diag(loc + ("open", "fields"), "K451", "open: fields must be a mapping")
            )
            fields = {}
        for fname in fields:
            self.ref(
                loc + ("open", "fields", fname),
                str(fname),
                self.fields,
                "K451",
                "field",
                "fields in this pack",
            )
        if sched.when is not None:
            self.expr(loc + ("when",), sched.when)
        if sched.while_ is not None:
            self.while_steps(loc, sched.while_)
        for j, eff in enumerate(sched.then):
            self.check_effect(loc + ("then", j), eff)

    def check_effect(self, eloc: Loc, eff: Any) -> None:
        doc, effects = self.doc, self.effects
        if not isinstance(eff, dict) or len(eff) != 1:
            self.out.append(
                doc.diag(
                    eloc,
                    "K109",
                    "an effect is one key: its type",
                    f"effect types: {', '.join(sorted(effects))}; e.g. - move: closed",
                )
            )
            return
        ((etype_name, args),) = eff.items()
        etype = effects.get(etype_name)
        if etype is None:
            self.out.append(
                doc.diag(
                    eloc + (etype_name,),
                    "K109",
                    f"unknown effect '{etype_name}'",
                    _hint_for(etype_name, effects, "effect types"),
                    key=True,
                )
            )
            return
        try:
            parsed = etype.args.model_validate(args)
        except ValidationError as exc:
            usage = (etype.args.__doc__ or "").strip().split("\n")[0].replace("``", "").rstrip(".")
            for d in _pydantic_problems(
                doc, exc, etype.args, args, eloc + (etype_name,), code="K110"
            ):
                self.out.append(
                    d if d.hint or not usage else dataclasses.replace(d, hint=f"write {usage}")
                )
            return
        if etype.check:
            for prob in etype.run_check(parsed, self.pack, self.extensions):
                if self._about_broken(prob):
                    continue
                self.out.append(
                    doc.diag(eloc + (etype_name,) + prob.loc, prob.code, prob.message, prob.hint)
                )

    def _about_broken(self, prob: Problem) -> bool:
        """An effect's problem that only names a part whose definition is broken."""
        named = set(re.findall(r"'([^']+)'", prob.message))
        for section, known in (
            ("fields", self.fields),
            ("roles", self.roles),
            ("steps", self.steps),
        ):
            valid = getattr(self.pack, section)
            if known is None and named:
                return True
            if any(
                n in (known or ()) and (n not in valid or self.sv.touched((section, n)))
                for n in named
            ):
                return True
        return False

    def check_derive(self) -> None:
        """``derive:``: each value parsed and typed; later ones may use earlier ones."""
        types = self.types
        for name, ddef in self.pack.derive.items():
            loc: Loc = ("derive", name)
            if self.sv.touched(loc):
                types[name] = FieldType(UNKNOWN_KIND)  # type: ignore[index]  # a dict
                continue
            if name in types:
                self.out.append(
                    self.doc.diag(
                        loc,
                        "K211",
                        f"derived value '{name}' has the name of a "
                        + ("system fact" if name in SYSTEM_FACTS else "field"),
                        "give the derived value its own name",
                        key=True,
                    )
                )
                continue
            try:
                expr, kind = parse_value(ddef.value, types, self.params, self.derived)
            except ExprError as exc:
                self.out.append(
                    self.doc.diag(
                        loc + ("value",), exc.code, exc.message, exc.hint, col_offset=exc.col
                    )
                )
                types[name] = FieldType(UNKNOWN_KIND)  # type: ignore[index]  # a dict
                continue
            self.derived.add(expr, kind, name=name)
            types[name] = FieldType(kind)  # type: ignore[index]  # a dict

    def check_not_by(self, aloc: Loc, not_by: Sequence[str]) -> None:
        actions = self._actions()
        for i, name in enumerate(not_by):
            fdef = self.pack.fields.get(name)
            if fdef is not None and fdef.type == "person":
                continue
            if actions is None or name in actions or self.fields is None:
                continue
            if fdef is not None:
                message = f"field '{name}' is a {fdef.type} field, not a person"
            elif self.fields is not None and name in self.fields:
                continue  # a field whose definition is broken: reported there
            else:
                message = f"'{name}' is neither a person field nor an action of this pack"
            people = sorted(n for n, f in self.pack.fields.items() if f.type == "person")
            self.out.append(
                self.doc.diag(
                    aloc + ("not_by", i),
                    "K132",
                    message,
                    _hint_for(name, [*people, *sorted(actions)], "person fields and actions"),
                )
            )

    def expr(self, loc: Loc, text: str) -> Cond | None:
        try:
            cond = parse_condition(text, self.types, self.params, self.derived)
        except ExprError as exc:
            self.out.append(self.doc.diag(loc, exc.code, exc.message, exc.hint, col_offset=exc.col))
            return None
        self.check_can_hold(loc, cond)
        return cond

    def check_can_hold(self, loc: Loc, cond: Cond) -> None:
        """K138 (warning): a condition no case can ever satisfy, given the fields' choices."""
        domains: dict[str, list[Any]] = {}
        for name in set(fields_of(cond)):
            ftype = self.types.get(name)
            if ftype is None:
                continue  # a derived fact (below)
            if ftype.kind == "boolean":
                domains[name] = [True, False]
            elif ftype.kind == "choice" and ftype.choices:
                domains[name] = list(ftype.choices)
            elif ftype.kind == UNKNOWN_KIND:
                return  # a broken definition: nothing sure can be said
        for name, (_, kind) in self.derived.exprs.items():
            if kind == "boolean":
                domains[name] = [True, False]
        cost = combinations(cond, domains)
        if cost > min(MAX_COMBINATIONS, self.lint_budget):
            return  # too costly to decide (or the pack's budget is spent): no warning
        self.lint_budget -= cost
        if not can_hold(cond, domains):
            self.out.append(
                self.doc.diag(
                    loc,
                    "K138",
                    "this condition can never hold, whatever the case's values",
                    "look for a field compared with two different values with and, or "
                    "ranges that do not meet (qty > 5 and qty < 3)",
                    severity="warning",
                )
            )

    def check_limits(self) -> None:
        """Engine limits are load-time diagnostics too (never a runtime surprise)."""

        nprops = len(self.types) + len(self.derived.exprs) + 4
        name = f"kefu:validate:{self.pack.procedure}"
        for rs_name, conds in (
            (name, self.rule_conds),
            (name + ":guards", self.guard_conds),
            (name + ":forms", self.form_conds),
        ):
            where: dict[str, Loc] = {}
            rules: list[IRRule] = []
            for rid, cond, loc in conds:
                if rid not in where:  # a duplicate id is reported above
                    where[rid] = loc
                    rules.append(IRRule(rid, cond))
            for prob in check_limits(RuleSet.of(rs_name, rules), nprops):
                loc = where.get(prob.rule_id or "", ("rules",))
                self.out.append(self.doc.diag(loc, prob.code, prob.message, prob.hint))


def _targets(to: Any) -> list[Any]:
    """The step names an action's ``to:`` (a name or a list of branches) may lead to."""
    if isinstance(to, list):
        return [b.get("to") for b in to if isinstance(b, dict)]
    return [to]


def param_fits(kind: str, value: Any) -> bool:
    if kind == "duration":
        try:
            Duration.parse(value)
        except (ValueError, TypeError):
            return False
        return True
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "text":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, int | float) and not isinstance(value, bool)


def _a(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def _param_hint(kind: str) -> str:
    return {
        "boolean": "write true or false",
        "text": "write a quoted text",
        "integer": "write a whole number without quotes",
        "duration": "write a duration such as 24h, 3 workdays or 3 days",
    }.get(kind, "write a number without quotes")


def pack_digest(raw: Mapping[str, Any], params: Mapping[str, Any]) -> str:
    """Identity of a procedure version: the pack as loaded plus the company's parameters."""
    text = json.dumps(
        {"pack": raw, "params": params}, sort_keys=True, ensure_ascii=False, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()


# -- company config ------------------------------------------------------------------------


@dataclass
class LoadedCompany:
    """A company config as loaded, with its procedures compiled for it."""

    company: CompanyDef
    path: Path
    doc: YamlDoc
    procedures: dict[str, CompiledProcedure] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.company.company


_COMPANY_PLACEHOLDERS: dict[str, tuple[Any, Any]] = {
    "kefu": (1, 1),
    "company": ("broken", "broken"),
    "name": ("", None),
}


def load_company(
    path: Path,
    packs: Mapping[str, LoadedPack],
    effects: Mapping[str, EffectType] | None = None,
    display_root: Path | None = None,
    *,
    extensions: Extensions | None = None,
) -> tuple[LoadedCompany | None, Diagnostics]:
    """Load ``config/<company>.yaml`` and compile the procedures it enables.

    Like :func:`load_pack`, every problem of the file comes back in one run.
    """
    diags = Diagnostics()
    doc = YamlDoc(path, _display(path, display_root))
    if not doc.load(diags):
        return None, diags
    raw = doc.plain()
    sv = salvage(CompanyDef, raw, _COMPANY_PLACEHOLDERS)
    if sv.invalid:
        try:
            CompanyDef.model_validate(raw)
        except ValidationError as exc:
            diags.extend(_pydantic_problems(doc, exc, CompanyDef, raw))
    if sv.model is None:
        return None, _sorted(diags)
    company = sv.model
    ext = extensions or Extensions()
    effects = effects or effect_registry(ext)

    def names(section: str, valid: Mapping[str, Any]) -> set[str] | None:
        written = _raw_keys(raw, section)
        return None if written is None or sv.is_broken((section,)) else set(valid) | written

    deps, people = names("departments", company.departments), names("people", company.people)

    def ref(
        loc: Loc, name: str, known: set[str] | None, code: str, what: str, hint_what: str
    ) -> None:
        if known is not None and name not in known:
            diags.append(
                doc.diag(loc, code, f"unknown {what} '{name}'", _hint_for(name, known, hint_what))
            )

    if not sv.is_broken(("calendar",)) and not sv.is_broken(("timezone",)):
        try:
            cal = WorkingCalendar(company.calendar, company.timezone)
            this_year = dt.date.today().year  # noqa: DTZ011  # which years to warn about, not a deadline
            for warning in cal.coverage_warnings(range(this_year, this_year + 2)):
                diags.append(
                    doc.diag(
                        ("calendar",) if "calendar" in raw else ("company",),
                        "K126",
                        warning,
                        "add that year's official days under calendar: extra_holidays / "
                        "extra_workdays, or update the chinesecalendar / holidays package",
                        severity="warning",
                    )
                )
            today = dt.date.today()  # noqa: DTZ011  # which days to look at, not a deadline
            if not any(cal.is_workday(today + dt.timedelta(days=n)) for n in range(366)):
                diags.append(
                    doc.diag(
                        ("calendar",) if "calendar" in raw else ("company",),
                        "K119",
                        "the working calendar has no working day in the coming year: "
                        "no working-time or working-day deadline can ever come due",
                        "check extra_holidays (a range too wide?) and weekend",
                        severity="warning",
                    )
                )
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass  # an unknown time zone is K123 below
    if not sv.is_broken(("timezone",)):
        try:
            zoneinfo.ZoneInfo(company.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            guess = did_you_mean(company.timezone, sorted(zoneinfo.available_timezones()))
            diags.append(
                doc.diag(
                    ("timezone",),
                    "K123",
                    f"unknown time zone '{company.timezone}'",
                    "use an IANA name such as Asia/Shanghai"
                    + (f" (did you mean '{guess}'?)" if guess else ""),
                )
            )

    def holders(loc: Loc, h: Any) -> None:
        for i, d in enumerate(h.departments):
            ref(
                loc + ("departments", sv.orig(loc + ("departments",), i)),
                d,
                deps,
                "K120",
                "department",
                "departments",
            )
        for i, p in enumerate(h.people):
            ref(
                loc + ("people", sv.orig(loc + ("people",), i)),
                p,
                people,
                "K121",
                "person",
                "people",
            )

    for rname, h in company.roles.items():
        holders(("roles", rname), h)
    for pname, person in company.people.items():
        dloc: Loc = ("people", pname, "departments")
        for i, d in enumerate(person.departments):
            ref(dloc + (sv.orig(dloc, i),), d, deps, "K120", "department", "departments")

    loaded = LoadedCompany(company, path, doc)
    for key, settings in company.procedures.items():
        ploc: Loc = ("procedures", key)
        lp = packs.get(key)
        if lp is None:
            diags.append(
                doc.diag(
                    ploc,
                    "K122",
                    f"unknown procedure '{key}'",
                    _hint_for(key, packs, "packs found (packs with errors are left out)"),
                    key=True,
                )
            )
            continue
        for rname, h in settings.roles.items():
            holders(ploc + ("roles", rname), h)
            if rname not in lp.pack.roles:
                diags.append(
                    doc.diag(
                        ploc + ("roles", rname),
                        "K104",
                        f"unknown role '{rname}'",
                        _hint_for(rname, lp.pack.roles, f"roles of {key}"),
                        key=True,
                    )
                )
        if settings.portal is not None:
            diags.extend(_check_portal(doc, ploc + ("portal",), settings.portal, lp.pack, key))
        for sname, override in settings.schedules.items():
            sdef = lp.pack.schedules.get(sname)
            if sdef is None:
                diags.append(
                    doc.diag(
                        ploc + ("schedules", sname),
                        "K452",
                        f"unknown schedule '{sname}'",
                        _hint_for(sname, lp.pack.schedules, f"schedules of {key}"),
                        key=True,
                    )
                )
                continue
            if override.on is not None:
                problem = (
                    check_on(sdef.every, override.on)
                    if isinstance(sdef.every, str)
                    else "on: is for calendar schedules; this one counts from an event of the case"
                )
                if problem:
                    diags.append(doc.diag(ploc + ("schedules", sname, "on"), "K450", problem))
        params: dict[str, Any] = {k: v.default for k, v in lp.pack.parameters.items()}
        for pname, value in settings.parameters.items():
            pdef: ParameterDef | None = lp.pack.parameters.get(pname)
            if pdef is None:
                diags.append(
                    doc.diag(
                        ploc + ("parameters", pname),
                        "K116",
                        f"unknown parameter '{pname}'",
                        _hint_for(pname, lp.pack.parameters, f"parameters of {key}"),
                        key=True,
                    )
                )
            elif not param_fits(pdef.type, value):
                diags.append(
                    doc.diag(
                        ploc + ("parameters", pname),
                        "K111",
                        f"parameter '{pname}' must be {_a(pdef.type)}, not {yaml_value(value)}",
                        _param_hint(pdef.type),
                    )
                )
            else:
                params[pname] = value
        fmt = settings.numbering
        stripped = NUMBERING_RE.sub("", fmt.replace("{procedure}", ""))
        if not sv.is_broken(ploc + ("numbering",)) and (
            "{seq" not in fmt or "{" in stripped or "}" in stripped
        ):
            diags.append(
                doc.diag(
                    ploc + ("numbering",),
                    "K124",
                    f"bad case-number format {fmt!r}",
                    "placeholders: {procedure} {yyyy} {yy} {mm} {dd} {seq:04}; {seq} is required",
                )
            )
        if not sv.is_broken(ploc + ("number_scheme",)):
            if settings.number_scheme not in ext.schemes:
                diags.append(
                    doc.diag(
                        ploc + ("number_scheme",),
                        "K603",
                        f"unknown case-number scheme '{settings.number_scheme}'",
                        _hint_for(
                            settings.number_scheme, ext.schemes, "schemes of the installed plugins"
                        ),
                    )
                )
        # every role of the pack should be held by somebody in this company
        unsure = any(sv.touched((s,)) for s in ("roles", "people")) or sv.touched(ploc + ("roles",))
        for rname in lp.pack.roles:
            if held_by_nobody(company, key, rname) and rname != "customer" and not unsure:
                diags.append(
                    doc.diag(
                        ploc,
                        "K125",
                        f"nobody holds role '{rname}' of {key}",
                        f"map it under roles: {rname}: {{departments: [...]}}",
                        severity="warning",
                        key=True,
                    )
                )
        blocked = [
            f"{sname}.{aname}"
            for sname, st in lp.pack.steps.items()
            for aname, act in st.actions.items()
            if (roles := list(act.role or st.role))
            and all(r != "customer" and held_by_nobody(company, key, r) for r in roles)
        ]
        if blocked and not unsure:
            diags.append(
                doc.diag(
                    ploc,
                    "K139",
                    f"nobody in this company can take {len(blocked)} action(s) of {key}: "
                    + ", ".join(blocked[:8])
                    + (", …" if len(blocked) > 8 else ""),
                    "give someone one of each action's roles (see K125 for the roles)",
                    severity="warning",
                    key=True,
                )
            )
        if settings.enabled and not diags.errors and not sv.invalid:
            loaded.procedures[key] = compile_procedure(
                lp.pack, params, company=company.company, effects=effects, raw=lp.raw
            )
    if not sv.is_broken(("plugins",)):
        _check_company_plugins(doc, company, loaded, diags, ext)
    if not sv.is_broken(("templates",)):
        check_templates(doc, company.templates, None, diags)
    # procedures effects name (open_case's linked cases, count_cases' counted ones: an
    # argument called `procedure`) must be enabled in this company
    for key, proc in loaded.procedures.items():
        for rule in proc.rules:
            for etype, args in rule.effects:
                target = getattr(args, "procedure", None)
                if isinstance(target, str) and target not in loaded.procedures:
                    what = (
                        f"opens a '{target}' case"
                        if etype.name == "open_case"
                        else f"names the procedure '{target}' ({etype.name})"
                    )
                    diags.append(
                        doc.diag(
                            ("procedures", key),
                            "K114",
                            f"rule '{rule.id}' {what}, which this company does not enable",
                            f"enable it under procedures: {target}: {{}}",
                            key=True,
                        )
                    )
    diags = _sorted(diags)
    return (loaded if not diags.errors else None), diags


def check_templates(
    doc: YamlDoc, templates: Mapping[str, Any], fields: set[str] | None, out: Diagnostics
) -> None:
    """K140 syntax, K141 unknown variable, K106 unknown ``fields.x`` in message templates."""
    for name, tdef in templates.items():
        for part in ("subject", "body"):
            label = getattr(tdef, part)
            if label is None:
                continue
            for lang, source in (("zh-CN", label.zh_CN), ("en", label.en)):
                if source is None:
                    continue
                loc: Loc = (
                    ("templates", name, part, lang)
                    if isinstance(doc.value_at(("templates", name, part)), dict)
                    else ("templates", name, part)
                )
                for code, message, _line in problems(source, fields):
                    hint = (
                        "fix the template: Jinja syntax, e.g. {{ fields.engineer }}"
                        if code == "K140"
                        else None
                    )
                    out.append(doc.diag(loc, code, f"template {name}: {message}", hint))


def _check_company_plugins(
    doc: YamlDoc,
    company: CompanyDef,
    loaded: LoadedCompany,
    diags: Diagnostics,
    reg: Extensions,
) -> None:
    """K600 unknown plugin, K601 invalid settings, K602 a pack uses what a disabled plugin gives."""
    names = set(reg.plugins)
    for name, ps in company.plugins.items():
        if name not in names:
            diags.append(
                doc.diag(
                    ("plugins", name),
                    "K600",
                    f"unknown plugin '{name}'",
                    _hint_for(name, names, "installed plugins (kefu plugins)"),
                    key=True,
                )
            )
            continue
        for loc, message in reg.settings_problems(name, ps.settings):
            diags.append(
                doc.diag(
                    ("plugins", name, "settings", *loc),
                    "K601",
                    f"plugin '{name}' settings: {message}",
                )
            )
    disabled = {n for n, ps in company.plugins.items() if not ps.enabled}
    if not disabled:
        return
    for key, proc in loaded.procedures.items():
        used: list[tuple[str, str]] = [("field type", f.type) for f in proc.pack.fields.values()]
        for rule in proc.rules:
            for etype, args in rule.effects:
                used.append(("effect type", etype.name))
                used += [("dispatch strategy", s) for s in getattr(args, "strategies", None) or []]
        for kind, what in used:
            owner = reg.plugin_of(kind, what)
            if owner in disabled:
                diags.append(
                    doc.diag(
                        ("plugins", owner),
                        "K602",
                        f"procedure '{key}' uses {kind} '{what}' of plugin '{owner}', "
                        "which this company disables",
                        f"enable the plugin or disable procedure {key}",
                        key=True,
                    )
                )
                break


__all__ = [
    "CompiledProcedure",
    "CompiledRule",
    "LoadedCompany",
    "LoadedPack",
    "Problem",
    "effect_registry",
    "load_company",
    "load_pack",
    "pack_digest",
]


def _check_portal(doc: Any, loc: Loc, portal: Any, pack: PackDef, key: str) -> list[Diagnostic]:
    """``portal:`` of a company's procedure: its role opens cases (with ``intake``; without,
    it is only the role one-time links act as, a role of the pack), its fields exist."""
    out = []
    if not portal.intake and portal.role not in pack.roles:
        out.append(
            doc.diag(
                loc + ("role",),
                "K104",
                f"one-time links act as '{portal.role}', which is not a role of {key}",
                f"roles of {key}: {', '.join(pack.roles)}",
            )
        )
    elif portal.intake and portal.role not in pack.open.role:
        out.append(
            doc.diag(
                loc + ("role",),
                "K104",
                f"the portal opens cases as '{portal.role}', which is not an opening role of {key}",
                f"opening roles of {key}: {', '.join(pack.open.role)}",
            )
        )
    for where, names in (("fixed", list(portal.fixed)), ("contact", portal.contact)):
        for i, name in enumerate(names):
            if name not in pack.fields:
                out.append(
                    doc.diag(
                        loc + ((where, name) if where == "fixed" else (where, i)),
                        "K106",
                        f"unknown field '{name}'",
                        _hint_for(name, pack.fields, f"fields of {key}"),
                        key=where == "fixed",
                    )
                )
    return out
