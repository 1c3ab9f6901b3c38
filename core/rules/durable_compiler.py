"""Compiling the IR for durable_rules' C core: rulesets, facts and limits (pure Python).

The C core of durable-rules 2.0.28 is fast but unmaintained: outside a small subset,
measured to be safe, it crashes (SIGSEGV), loops forever holding the GIL, or quietly
fires the wrong rules. This module compiles RuleSets into that subset only, and
:mod:`core.rules.durable_runtime` feeds the result to the C module. It never imports the
C module, so :mod:`core.rules.limits` and :mod:`core.rules.isolation` use it in processes
that must never load the C core (the API process when the engine runs isolated, and
Python 3.13+ where it cannot be built).

* **Single-fact rules only**: ``{"all": [{"m": <cond>}]}`` with ``$eq $neq $lt $lte $gt
  $gte $ex $nex $and $or``; no ``$not``, no joins, no ``post``, no regex, no timers. Each
  C ruleset also holds the *sentinel rule* (on the property ``X``, lowest salience) the
  runtime uses to prime its sessions.
* **Typed, renamed properties**: the C core compares across types (``True == 1``,
  ``"1" == 1``, ``"abc" > 100``) and compares strings with ``strncmp`` on the raw JSON
  text, which gets prefixes, spaces, quotes and escapes wrong (``"ab" < "ab c"`` is false
  there). So a field ``f`` becomes one property per value kind: ``Bf`` (bool), ``Nf``
  (int or float) and ``Sf`` (str, as the hex of its UTF-8 bytes: hex digits sort like the
  bytes, UTF-8 byte order is code-point order, which is Python's ``str`` order, and the
  closing quote sorts below every hex digit, so prefixes sort first). A comparison across
  kinds meets a missing property, which is false for every operator (``$neq`` included,
  measured), exactly as the IR wants. ``set``/``unset`` test a presence flag ``Pf``. The
  core keys properties ``id`` and ``sid`` itself; field names are ``[a-z][a-z0-9_]*``,
  so the upper-case prefixes never produce them nor the sentinel's property ``X``.
* **Limits by construction**: a RuleSet is cut into C rulesets ("chunks", at most
  MAX_RULES_PER_CHUNK rules) whose alpha network — modelled here the way rete.c builds
  it — can never put more than STACK_BUDGET nodes on the 64-slot match stack (error
  303: nothing fires), never hangs more than MAX_NODE_CHILDREN conditions under one
  node (a full 512-slot table loops forever holding the GIL), nor more than
  MAX_NODE_ABSENCE absence tests (107), nor ends 255 rules on one node. What no cut can
  fix — one rule too wide or too deep by itself, too many fields, colliding names,
  inexact numbers — is reported by :mod:`core.rules.limits` at load time (same code,
  same model) and makes the runtime raise :class:`RulesetTooComplex`. The measured
  thresholds live in :mod:`core.rules.limits`.

Constant parts of a condition are folded in Python (a ``{"true": True}`` rule always
fires, an empty ``or`` never does), and a top-level ``or`` becomes one durable rule per
alternative, each mapped back to the rule's id.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.rules.ir import OPS, Cond, RuleSet, Scalar
from core.rules.limits import (
    MAX_EXACT_NUMBER,
    MAX_FACT_PROPERTIES,
    MAX_FIRINGS_PER_RULE,
    MAX_GROUPS_PER_RULE,
    MAX_MODEL_NODES,
    MAX_NODE_ABSENCE,
    MAX_NODE_CHILDREN,
    MAX_RULES_PER_CHUNK,
    MAX_RULES_PER_RULESET,
    RESERVED_FACT_PROPERTIES,
    SAFE_BETA_LIST,
    STACK_BUDGET,
    LimitProblem,
)

# -- property names -----------------------------------------------------------------------
KIND_BOOL, KIND_NUMBER, KIND_STRING, PRESENT = "B", "N", "S", "P"
SENTINEL_PROP = "X"
SENTINEL_RULE = "X"
#: Names the C core hashes specially or that we reserve; no compiled property may share
#: their 32-bit FNV-1a hash (the core keys properties by hash only).
RESERVED_PROPS = ("id", "sid", "$s", "$forward", SENTINEL_PROP)
#: Numbers beyond MAX_EXACT_NUMBER in facts are replaced by this stand-in of the same
#: sign: every condition value is within ±2**53, so the outcome is unchanged, and 2**60
#: is exact both as a double and as a 64-bit int.
_FAR = 2**60

_DURABLE_OP = {"eq": "$eq", "ne": "$neq", "lt": "$lt", "le": "$lte", "gt": "$gt", "ge": "$gte"}


class RulesetTooComplex(ValueError):
    """A rule exceeds what durable_rules can take even alone (see core.rules.limits)."""

    def __init__(self, message: str, rule_id: str | None = None, code: str = "K399") -> None:
        super().__init__(message)
        self.rule_id = rule_id
        self.code = code


def fnv1a32(name: str) -> int:
    """The hash durable_rules keys properties by (getStringAndHash in json.c).

    ``char`` is signed there, so bytes >= 0x80 are sign-extended before the xor.
    """
    h = 0x811C9DC5
    for b in name.encode():
        if b >= 0x80:
            b |= 0xFFFFFF00
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return KIND_BOOL
    if isinstance(value, int | float):
        return KIND_NUMBER
    if isinstance(value, str):
        return KIND_STRING
    raise ValueError(f"not a condition value: {value!r} ({type(value).__name__})")


def encode_string(value: str) -> str:
    # surrogatepass: a lone surrogate still encodes, in code-point order
    return value.encode("utf-8", "surrogatepass").hex()


# -- normalising the IR ------------------------------------------------------------------
def normalize(cond: Cond) -> Cond | bool:
    """Fold constants and flatten; returns True, False or a condition without constants."""
    if "and" in cond:
        parts: list[Cond] = []
        for c in cond["and"]:
            n = normalize(c)
            if n is False:
                return False
            if n is True:
                continue
            parts.extend(n["and"] if "and" in n else [n])
        parts = _dedupe(parts)
        if not parts:
            return True
        return parts[0] if len(parts) == 1 else {"and": parts}
    if "or" in cond:
        alts: list[Cond] = []
        for c in cond["or"]:
            n = normalize(c)
            if n is True:
                return True
            if n is False:
                continue
            alts.extend(n["or"] if "or" in n else [n])
        alts = _dedupe(alts)
        if not alts:
            return False
        return alts[0] if len(alts) == 1 else {"or": alts}
    if "cmp" in cond:
        if cond["cmp"] not in OPS:
            raise ValueError(f"unknown comparison {cond['cmp']!r}")
        kind_of(cond["value"])  # raises on a non-scalar
        return {"cmp": cond["cmp"], "field": cond["field"], "value": cond["value"]}
    if "set" in cond or "unset" in cond:
        return dict(cond)
    if cond.get("true") is True:
        return True
    raise ValueError(f"not an IR condition: {cond!r}")


def _key(c: Any) -> str:
    # bool/int/float stay apart in the key (json keeps true / 1 / 1.0 distinct)
    return json.dumps(c, sort_keys=True)


def same_rules(a: RuleSet, b: RuleSet) -> bool:
    """Whether two RuleSets hold the same rules, telling ``True``, ``1`` and ``1.0``
    apart (``==`` on the dicts would not)."""
    return len(a.rules) == len(b.rules) and all(
        ra.id == rb.id and _key(ra.cond) == _key(rb.cond)
        for ra, rb in zip(a.rules, b.rules, strict=True)
    )


def _dedupe(conds: Iterable[Cond]) -> list[Cond]:
    seen: set[str] = set()
    out = []
    for c in conds:
        k = _key(c)
        if k not in seen:
            seen.add(k)
            out.append(c)
    return out


def check_value(value: Scalar) -> str | None:
    """Why a condition value cannot be compared exactly by the C core, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value!r} is not a finite number"
    if abs(value) > MAX_EXACT_NUMBER:
        return f"{value!r} is beyond ±2**53, where numbers stop comparing exactly"
    return None


def to_durable(cond: Cond) -> dict[str, Any]:
    """One normalised IR condition as the durable_rules ``m`` expression."""
    if "and" in cond:
        return {"$and": [to_durable(c) for c in cond["and"]]}
    if "or" in cond:
        return {"$or": [to_durable(c) for c in cond["or"]]}
    if "cmp" in cond:
        value = cond["value"]
        kind = kind_of(value)
        if kind == KIND_STRING:
            value = encode_string(value)
        return {_DURABLE_OP[cond["cmp"]]: {kind + cond["field"]: value}}
    if "set" in cond:
        return {"$ex": {PRESENT + cond["set"]: 1}}
    if "unset" in cond:
        return {"$nex": {PRESENT + cond["unset"]: 1}}
    raise ValueError(f"not a normalised condition: {cond!r}")


# -- a model of the alpha network the C core builds (rete.c createAlpha/findAlpha) --------
class _Node:
    """One alpha node. Conditions on a present property are shared by key, like findAlpha
    does; absence tests are shared by property; each ``$or`` gets a fresh forward node
    hanging (as an absence test on ``$forward``, which always holds) under the end of
    every alternative. ``betas`` counts the rules ending here; ``h`` and ``f`` cache the
    node's stack height and firings (see :meth:`_Network.analyse`)."""

    __slots__ = ("conj", "nex", "fwd", "betas", "eq_value", "prop", "h", "f")

    def __init__(self, prop: str = "", eq_value: Any = None) -> None:
        self.conj: dict[str, _Node] = {}
        self.nex: dict[str, _Node] = {}
        self.fwd: list[_Node] = []
        self.betas = 0
        self.prop = prop
        # numeric/string/bool value of an equality test: distinct values on one property
        # can never match one fact together, which is what keeps ``x == 1 or x == 2 ...``
        # cheap on the stack
        self.eq_value = eq_value
        self.h = 1
        self.f = 0


@dataclass
class _Shape:
    stack: int = 0  # most nodes on the match stack for one fact
    firings: int = 0  # most rule activations for one fact (sentinel excluded)
    conj: int = 0  # most conditions directly under one node
    absence: int = 0  # most absence tests / forward nodes directly under one node
    betas: int = 0  # most rules ending on one node


class _Network:
    """The alpha network of one C ruleset; counts what the C core's fixed tables hold.

    Rules are inserted one by one and :meth:`analyse` only revisits the nodes the
    insertions since the last call touched (a node's numbers depend on its children
    only), so packing a chunk costs about its size, not its size squared.
    """

    def __init__(self) -> None:
        self.root = _Node()
        self.nodes = 1
        self.shape = _Shape()
        self._touched: dict[int, _Node] = {id(self.root): self.root}
        # the sentinel rule: one more condition under the root
        self._add_leaf(self.root, {"$ex": {SENTINEL_PROP: 1}}).betas += 1

    def add_rule(self, expr: dict[str, Any]) -> None:
        self._touched[id(self.root)] = self.root
        self._build(self.root, expr).betas += 1

    def _build(self, parent: _Node, expr: dict[str, Any]) -> _Node:
        """Insert one expression under ``parent`` the way createAlpha does; returns the
        node where it ends (a chain for ``$and``, a forward node for ``$or``). Iterative
        along ``$and`` chains, recursive only into nested ``$or``."""
        node = parent
        for part in _chain(expr):
            if self.nodes > MAX_MODEL_NODES:
                raise _ModelTooBig
            ((op, arg),) = part.items()
            if op == "$or":
                fwd = _Node("$forward")
                self.nodes += 1
                self._touched[id(fwd)] = fwd
                for alt in arg:
                    self._build(node, alt).fwd.append(fwd)
                node = fwd
            else:
                node = self._add_leaf(node, part)
        return node

    def _add_leaf(self, parent: _Node, leaf: dict[str, Any]) -> _Node:
        ((op, arg),) = leaf.items()
        ((prop, value),) = arg.items()
        table = parent.nex if op == "$nex" else parent.conj
        key = prop if op == "$nex" else f"{op}\x00{prop}\x00{_key(value)}"
        node = table.get(key)
        if node is None:
            eq_value = None
            if op == "$eq":
                eq_value = (
                    float(value)
                    if isinstance(value, int | float) and not isinstance(value, bool)
                    else (type(value).__name__, value)
                )
            node = table[key] = _Node(prop, eq_value)
            self.nodes += 1
        self._touched[id(node)] = node
        return node

    # -- what the C core would run into --------------------------------------------------
    def analyse(self) -> _Shape:
        """Update the numbers of the touched nodes (post-order, iteratively: ``and``
        chains are deep) and return the network's shape.

        Stack: handleAlpha pops a node, pushes every child that matches and goes on depth
        first; with ``m`` children able to match together the stack holds ``m`` of them,
        and while the last one pushed is explored the other ``m - 1`` wait, so
        H(n) = max(1, m - 1 + max H(child)). Every absence test counts as matching, and of
        the equality tests on one property only those with the most common value: an
        upper bound for any fact — the session's own state fact, which lacks every
        property, included.

        Firings: a rule fires once per path that reaches it (a forward node is pushed
        once per alternative that holds), F(n) = rules ending at n + the sum of F over
        the children that can match together.
        """
        touched, shape = self._touched, self.shape
        done: set[int] = set()
        stack: list[tuple[_Node, bool]] = [(self.root, False)]
        while stack:
            n, ready = stack.pop()
            if id(n) in done:
                continue
            children = [*n.conj.values(), *n.nex.values(), *n.fwd]
            if not ready:
                stack.append((n, True))
                # untouched children keep their numbers: only touched ones are revisited
                stack.extend((c, False) for c in children if id(c) in touched and id(c) not in done)
                continue
            done.add(id(n))
            shape.conj = max(shape.conj, len(n.conj))
            shape.absence = max(shape.absence, len(n.nex) + len(n.fwd))
            shape.betas = max(shape.betas, n.betas)
            if not children:
                n.h, n.f = 1, n.betas
                continue
            # children that can match one fact together: all absence tests and forward
            # nodes, all non-equality tests, and per property the equality tests of one
            # value (the worst value, for height and for firings separately)
            m = len(n.nex) + len(n.fwd)
            f = n.betas + sum(c.f for c in n.nex.values()) + sum(c.f for c in n.fwd)
            eq_h: dict[str, dict[Any, int]] = {}
            eq_f: dict[str, dict[Any, int]] = {}
            for c in n.conj.values():
                if c.eq_value is None:
                    m += 1
                    f += c.f
                else:
                    by_value = eq_h.setdefault(c.prop, {})
                    by_value[c.eq_value] = by_value.get(c.eq_value, 0) + 1
                    by_value = eq_f.setdefault(c.prop, {})
                    by_value[c.eq_value] = by_value.get(c.eq_value, 0) + c.f
            m += sum(max(v.values()) for v in eq_h.values())
            f += sum(max(v.values()) for v in eq_f.values())
            n.h = max(1, m - 1 + max(c.h for c in children))
            n.f = f
        touched.clear()
        shape.stack = self.root.h
        shape.firings = self.root.f - 1  # the sentinel's own
        return _Shape(**vars(shape))


class _ModelTooBig(Exception):
    pass


def _chain(expr: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """The parts of an ``$and`` in order, nested ``$and`` flattened (the core chains them
    the same way)."""
    stack = [expr]
    while stack:
        e = stack.pop()
        ((op, arg),) = e.items()
        if op == "$and":
            stack.extend(reversed(arg))
        else:
            yield e


def _needs_property(expr: dict[str, Any]) -> bool:
    """Whether a fact must carry some compiled property for this rule to match: true
    unless its first test is an absence test (or an ``or`` with such an alternative)."""
    first = next(iter(_chain(expr)))
    ((op, arg),) = first.items()
    if op == "$nex":
        return False
    if op == "$or":
        return all(_needs_property(a) for a in arg)
    return True


# -- compiling a RuleSet -----------------------------------------------------------------
@dataclass(frozen=True)
class DurableRule:
    """One durable rule: an alternative of an IR rule's condition."""

    rule_id: str
    expr: dict[str, Any]  # the ``m`` expression
    props: frozenset[str]
    groups: int


@dataclass(frozen=True)
class ChunkPlan:
    """What one C ruleset holds: durable rules and how to build its facts."""

    rules: tuple[DurableRule, ...]
    #: the fact fields this chunk's rules test
    fields: frozenset[str]
    #: True if some rule can match a fact that has none of the chunk's fields
    matches_empty: bool

    def definition(self) -> dict[str, Any]:
        """The JSON ruleset for ``create_ruleset`` (no ``run`` keys: the core rejects them)."""
        d: dict[str, Any] = {f"r{i}": {"all": [{"m": r.expr}]} for i, r in enumerate(self.rules)}
        # lowest salience: it fires after every real rule of the same fact
        d[SENTINEL_RULE] = {"pri": 65535, "all": [{"m": {"$ex": {SENTINEL_PROP: 1}}}]}
        return d

    def definition_json(self) -> str:
        """:meth:`definition` as the JSON text the C core parses (see :func:`number_text`)."""
        text = json.dumps(self.definition(), separators=(",", ":"))
        return _BARE_EXPONENT.sub(r"\1.0\2", text)


@dataclass(frozen=True)
class CompiledPlan:
    """A RuleSet compiled for the C core: its chunks, or the problems that prevent it."""

    name: str
    always: frozenset[str]  # rule ids whose condition is constantly true
    chunks: tuple[ChunkPlan, ...]
    problems: tuple[LimitProblem, ...]
    #: per fact field some rule tests: (value kinds compared, presence tested). One fact
    #: built from these serves every chunk (a chunk ignores properties it does not test).
    fields: tuple[tuple[str, frozenset[str], bool], ...] = ()


def _props_and_groups(expr: dict[str, Any], props: set[str]) -> int:
    ((op, arg),) = expr.items()
    if op in ("$and", "$or"):
        return 1 + sum(_props_and_groups(e, props) for e in arg)
    ((prop, _),) = arg.items()
    props.add(prop)
    return 0


def _alternatives(cond: Cond) -> list[Cond] | bool:
    n = normalize(cond)
    if isinstance(n, bool):
        return n
    return list(n["or"]) if "or" in n else [n]


def _leaf_values(cond: Cond) -> Iterable[Scalar]:
    group = cond.get("and", cond.get("or"))
    if group is not None:
        for c in group:
            yield from _leaf_values(c)
    elif "cmp" in cond:
        yield cond["value"]


def _field_kinds(drules: Iterable[DurableRule]) -> tuple[tuple[str, frozenset[str], bool], ...]:
    kinds: dict[str, set[str]] = {}
    presence: set[str] = set()
    for r in drules:
        for p in r.props:
            kinds.setdefault(p[1:], set())  # listed even when only presence is tested
            if p[0] == PRESENT:
                presence.add(p[1:])
            else:
                kinds[p[1:]].add(p[0])
    return tuple((f, frozenset(kinds[f]), f in presence) for f in sorted(kinds))


def fact_property_count(
    fields: Sequence[tuple[str, frozenset[str], bool]], fact_properties: int | None = None
) -> int:
    """Most properties one asserted fact carries: one per field some rule compares (a
    fact has one value per field, so one kind), one per presence flag, ``id`` and
    ``sid``. A rule cannot compare more fields than the fact has (``fact_properties``)."""
    compared = sum(1 for _, kinds, _ in fields if kinds)
    if fact_properties is not None:
        compared = min(compared, fact_properties)
    flags = sum(1 for _, _, presence in fields if presence)
    return compared + flags + RESERVED_FACT_PROPERTIES


def rule_problems(dr: DurableRule) -> list[LimitProblem]:
    """What makes one durable rule impossible for the C core even alone in a chunk."""
    out: list[LimitProblem] = []
    rid = dr.rule_id
    if dr.groups > MAX_GROUPS_PER_RULE:
        out.append(
            LimitProblem(
                "K305",
                rid,
                f"rule '{rid}': its condition nests {dr.groups} and/or groups; the engine takes "
                f"at most {MAX_GROUPS_PER_RULE} in one rule (error 113)",
                "flatten the condition (a and (b and c) is a and b and c), or split the rule",
            )
        )
    net = _Network()
    try:
        net.add_rule(dr.expr)
    except _ModelTooBig:
        out.append(
            LimitProblem(
                "K309",
                rid,
                f"rule '{rid}': its condition builds more than {MAX_MODEL_NODES} engine nodes",
                "split the rule",
            )
        )
        return out
    shape = net.analyse()
    if shape.conj > MAX_NODE_CHILDREN:
        out.append(
            LimitProblem(
                "K302",
                rid,
                f"rule '{rid}': {shape.conj} different conditions hang off one point of its "
                f"condition (e.g. one `or` comparing a field with many values); the engine is "
                f"kept to {MAX_NODE_CHILDREN} (from 511 it loops forever)",
                "split the `or` over several rules with the same effects",
            )
        )
    if shape.absence > MAX_NODE_ABSENCE:
        out.append(
            LimitProblem(
                "K304",
                rid,
                f"rule '{rid}': {shape.absence} `is not set` tests or `or` groups at one point "
                f"of its condition; the engine is kept to {MAX_NODE_ABSENCE} (error 107 from 129)",
                "split the rule",
            )
        )
    if shape.stack > STACK_BUDGET:
        out.append(
            LimitProblem(
                "K303",
                rid,
                f"rule '{rid}': up to {shape.stack} parts of its condition can hold for one "
                f"case at once; the engine stops at 64 (error 303, nothing fires) and kefu "
                f"keeps {STACK_BUDGET}",
                "split a wide `or` over several rules with the same effects",
            )
        )
    if shape.firings > MAX_FIRINGS_PER_RULE:
        out.append(
            LimitProblem(
                "K306",
                rid,
                f"rule '{rid}': its `or` groups multiply into {shape.firings} paths, each "
                f"re-checked (and fired) for one case; kefu allows {MAX_FIRINGS_PER_RULE}",
                "write it as several rules, or put a single `or` group last",
            )
        )
    return out


def compile_ruleset(ruleset: RuleSet, *, fact_properties: int | None = None) -> CompiledPlan:
    """Split a RuleSet into chunk plans the C core can take; pure Python.

    ``problems`` lists what cannot be compiled at all (the runtime refuses the ruleset
    then; the loader reports the same problems first, through core.rules.limits).
    """
    always: set[str] = set()
    drules: list[DurableRule] = []
    problems: list[LimitProblem] = []
    for r in ruleset.rules:
        try:
            alts = _alternatives(r.cond)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            problems.append(
                LimitProblem(
                    "K311",
                    r.id,
                    f"rule '{r.id}': not a valid condition: {exc}",
                    "this is a kefu bug: please report the rule",
                )
            )
            continue
        if alts is True:
            always.add(r.id)
            continue
        if alts is False:
            continue
        bad = [why for alt in alts for v in _leaf_values(alt) if (why := check_value(v))]
        for why in bad:
            problems.append(
                LimitProblem(
                    "K307",
                    r.id,
                    f"rule '{r.id}' compares with {why}",
                    f"use finite numbers within ±{MAX_EXACT_NUMBER:,}",
                )
            )
        if bad:
            continue
        for alt in alts:
            expr = to_durable(alt)
            props: set[str] = set()
            groups = _props_and_groups(expr, props)
            dr = DurableRule(r.id, expr, frozenset(props), groups)
            problems.extend(rule_problems(dr))
            drules.append(dr)
    problems.extend(_collisions(drules))
    fields = _field_kinds(drules)
    nprops = fact_property_count(fields, fact_properties)
    if nprops > MAX_FACT_PROPERTIES:
        problems.append(
            LimitProblem(
                "K301",
                None,
                f"the rules test {len(fields)} fields; with presence flags one fact would carry "
                f"{nprops} properties, and the engine is kept to {MAX_FACT_PROPERTIES} (it fails "
                "from 255, error 302)",
                "test fewer distinct fields, or split the procedure's rules",
            )
        )
    if problems:
        return CompiledPlan(ruleset.name, frozenset(always), (), tuple(_unique(problems)), fields)
    return CompiledPlan(ruleset.name, frozenset(always), tuple(_pack(drules)), (), fields)


def _unique(problems: Iterable[LimitProblem]) -> list[LimitProblem]:
    seen: set[tuple[str, str | None, str]] = set()
    out = []
    for p in problems:
        k = (p.code, p.rule_id, p.message)
        if k not in seen:
            seen.add(k)
            out.append(p)
    return out


def _collisions(drules: Sequence[DurableRule]) -> list[LimitProblem]:
    """Two property names with one FNV-1a hash are one property for the C core."""
    by_hash: dict[int, str] = {fnv1a32(n): n for n in RESERVED_PROPS}
    out = []
    for prop in sorted({p for dr in drules for p in dr.props}):
        h = fnv1a32(prop)
        other = by_hash.setdefault(h, prop)
        if other != prop:
            mine = f"field '{prop[1:]}'"
            theirs = (
                f"the engine's own '{other}'" if other in RESERVED_PROPS else f"field '{other[1:]}'"
            )
            out.append(
                LimitProblem(
                    "K308",
                    None,
                    f"{mine} and {theirs} have the same engine hash ({h}); durable_rules keys "
                    "properties by that hash and would mix them up",
                    "rename one of the fields",
                )
            )
    return out


def _pack(drules: Sequence[DurableRule]) -> list[ChunkPlan]:
    """Greedy, in declared order: a rule joins the current chunk while the chunk fits.

    The chunk's network grows by insertion; only when a rule does not fit is it rebuilt
    (the failed insertion cannot be taken out), so packing stays linear in the rules.
    """
    chunks: list[ChunkPlan] = []
    current: list[DurableRule] = []
    net = _Network()
    for dr in drules:
        if not current:
            net.add_rule(dr.expr)  # fits alone: rule_problems checked that
        elif not _fits(net, current, dr):
            chunks.append(_chunk(current))
            current, net = [], _Network()
            net.add_rule(dr.expr)
        current.append(dr)
    if current:
        chunks.append(_chunk(current))
    return chunks


def _fits(net: _Network, current: Sequence[DurableRule], dr: DurableRule) -> bool:
    """Add ``dr`` to ``net`` (which holds ``current``) and tell whether the C core can
    still take the chunk."""
    if len(current) + 1 > MAX_RULES_PER_CHUNK:
        return False
    try:
        net.add_rule(dr.expr)
    except _ModelTooBig:
        return False
    s = net.analyse()
    return (
        s.stack <= STACK_BUDGET
        and s.conj <= MAX_NODE_CHILDREN
        and s.absence <= MAX_NODE_ABSENCE
        and s.betas < SAFE_BETA_LIST
    )


def _chunk(rules: Sequence[DurableRule]) -> ChunkPlan:
    fields = frozenset(p[1:] for r in rules for p in r.props)
    matches_empty = not all(_needs_property(r.expr) for r in rules)
    return ChunkPlan(tuple(rules), fields, matches_empty)


# -- encoding facts ----------------------------------------------------------------------
#: per field some rule tests: its name and the JSON prefixes (``,"Bname":`` ...) of its
#: bool, number and string properties, "" for those no rule tests, and its presence flag
#: with its value (``,"Pname":1``) or "" when no rule tests presence
FactKey = tuple[str, str, str, str, str]


def fact_keys(plan: CompiledPlan) -> list[FactKey]:
    """The pre-encoded property names :func:`fact_body` builds facts for ``plan`` from."""

    def key(kind: str, name: str, kinds: frozenset[str]) -> str:
        return _json_key(kind + name) if kind in kinds else ""

    return [
        (
            name,
            key(KIND_BOOL, name, kinds),
            key(KIND_NUMBER, name, kinds),
            key(KIND_STRING, name, kinds),
            _json_key(PRESENT + name) + "1" if presence else "",
        )
        for name, kinds, presence in plan.fields
    ]


def _json_key(prop: str) -> str:
    return "," + json.dumps(prop) + ":"


def fact_body(facts: Mapping[str, Scalar], keys: Sequence[FactKey]) -> str:
    """The properties of the fact every chunk asserts, as JSON text (``,"k":v`` each),
    built by concatenation on the hot path: keys are pre-encoded per ruleset, values are
    ``true``/``false``, finite numbers (whose ``repr`` is valid JSON) and hex strings.
    Bad values raise here, before the C core is touched."""
    parts = []
    for name, bkey, nkey, skey, pkey in keys:
        v = facts.get(name)
        if v is None:
            continue
        if pkey:
            parts.append(pkey)
        if isinstance(v, bool):
            if bkey:
                parts.append(bkey + ("true" if v else "false"))
        elif isinstance(v, int | float):
            if nkey:
                parts.append(nkey + number_text(_number(name, v)))
        elif isinstance(v, str):
            if skey:
                parts.append(f'{skey}"{encode_string(v)}"')
        else:
            raise TypeError(f"fact {name!r} is a {type(v).__name__}, not a scalar")
    return "".join(parts)


def number_text(v: int | float) -> str:
    """``v`` as JSON text the C core parses: its parser rejects an exponent after a
    mantissa without a point (error 204 for ``1e-05`` or ``1e+16``, fine for
    ``1.0e-05``), which is how ``repr`` writes floats such as 0.00001."""
    text = repr(v)
    if "e" in text and "." not in text:
        text = text.replace("e", ".0e", 1)
    return text


#: a JSON number token with an exponent but no point (see :func:`number_text`); the
#: definitions hold no free text (values are hex, names are keys), so no string matches
_BARE_EXPONENT = re.compile(r"(?<=[:,\[])(-?\d+)([eE][-+]?\d+)(?=[,}\]])")


def _number(name: str, v: int | float) -> int | float:
    if v != v:  # NaN: the IR's numbers are real numbers; the loader's validation refuses it
        raise ValueError(f"fact {name!r} is NaN, which no rule can compare")
    if -MAX_EXACT_NUMBER <= v <= MAX_EXACT_NUMBER:
        return v
    # every condition value is within ±2**53 (checked at compile time), so any number
    # beyond compares like this stand-in — which JSON and the C core take exactly
    return _FAR if v > 0 else -_FAR


def check_limits(ruleset: RuleSet, fact_properties: int) -> list[LimitProblem]:
    """Every engine limit ``ruleset`` exceeds; an empty list when durable_rules can run it.

    ``fact_properties`` is how many properties a full case fact has (fields plus system
    facts). The adapter asserts only what the ruleset's rules test — one property per
    field compared (a fact has one value per field), one presence flag per field tested
    with ``set``/``unset`` — so the count is ``min(fields compared, fact_properties)``
    plus the presence flags plus ``id`` and ``sid``.
    """
    out: list[LimitProblem] = []
    if len(ruleset.rules) > MAX_RULES_PER_RULESET:
        out.append(
            LimitProblem(
                "K310",
                None,
                f"{len(ruleset.rules)} rules in one ruleset; the engine takes at most "
                f"{MAX_RULES_PER_RULESET} (each 60 cost one more engine round trip per action)",
                "split the procedure, or merge rules that share effects",
            )
        )
    plan = compile_ruleset(ruleset, fact_properties=fact_properties)
    out.extend(plan.problems)
    return out


# -- which rulesets may run in the server's own process ---------------------------------
#: The envelope in which a RuleSet is evaluated in-process by the ``durable`` engine: a
#: quarter to a half of every measured table size, the region the packs, the scenario
#: suites and the differential tests exercise all the time. Everything the C core has
#: been seen to crash, hang or answer wrongly on lies beyond the load-time limits
#: (core.rules.limits), which every RuleSet has passed before it gets here; this is a
#: second, wider margin. A RuleSet outside it keeps running in the supervised child.
IN_PROCESS_MAX_STACK = STACK_BUDGET // 2
IN_PROCESS_MAX_CONDITIONS = MAX_NODE_CHILDREN // 4
IN_PROCESS_MAX_ABSENCE = MAX_NODE_ABSENCE // 4
IN_PROCESS_MAX_RULES_ON_ONE_CONDITION = SAFE_BETA_LIST // 4
IN_PROCESS_MAX_PROPERTIES = MAX_FACT_PROPERTIES // 2
IN_PROCESS_MAX_GROUPS = MAX_GROUPS_PER_RULE // 2
IN_PROCESS_MAX_CHUNKS = 4


def out_of_process_reason(ruleset: RuleSet) -> str | None:
    """Why ``ruleset`` must be evaluated in the supervised child process rather than in
    the server's own, or None when it lies well inside what the C core was measured to
    handle (see the ``IN_PROCESS_*`` bounds)."""
    plan = compile_ruleset(ruleset)
    if plan.problems:
        return f"it exceeds an engine limit ({plan.problems[0].code})"
    if len(plan.chunks) > IN_PROCESS_MAX_CHUNKS:
        return f"it needs {len(plan.chunks)} engine rulesets (in-process: {IN_PROCESS_MAX_CHUNKS})"
    nprops = fact_property_count(plan.fields, None)
    if nprops > IN_PROCESS_MAX_PROPERTIES:
        return f"its facts carry {nprops} properties (in-process: {IN_PROCESS_MAX_PROPERTIES})"
    for chunk in plan.chunks:
        net = _Network()
        for dr in chunk.rules:
            if dr.groups > IN_PROCESS_MAX_GROUPS:
                return f"rule '{dr.rule_id}' nests {dr.groups} and/or groups"
            net.add_rule(dr.expr)
        s = net.analyse()
        for what, value, bound in (
            ("match stack", s.stack, IN_PROCESS_MAX_STACK),
            ("conditions at one point", s.conj, IN_PROCESS_MAX_CONDITIONS),
            ("absence tests at one point", s.absence, IN_PROCESS_MAX_ABSENCE),
            ("rules on one condition", s.betas, IN_PROCESS_MAX_RULES_ON_ONE_CONDITION),
        ):
            if value > bound:
                return f"its {what} reaches {value} (in-process: {bound})"
    return None
