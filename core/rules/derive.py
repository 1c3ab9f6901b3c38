"""Derived values: what a rule needs but no field holds, computed before evaluation.

durable_rules sees one fact per case and compares each property with a constant. A
rule such as "mould found within 15 days of leaving the warehouse" needs date
arithmetic, and "the reviewer is not the author" compares two values; neither is a
comparison of one property with a constant. So such values are *derived*: the loader
compiles each into a small value expression (below), type-checks it, and gives it a
fact name; before every evaluation :func:`compute` adds the derived facts to the case's
facts, and the rule itself compares that fact with a constant, like any field. Both
evaluators see the same plain facts, and so does the journal.

A value expression is JSON-able data:

``{"field": f, "kind": k}``                 a fact (field, system fact, earlier derived value)
``{"const": v, "kind": k}``                 a literal or a company parameter
``{"now": True}`` / ``{"today": True}``     the moment of the change / its date, company time
``{"call": fn, "args": [e, ...]}``          one of :data:`FUNCTIONS`
``{"arith": op, "args": [a, b]}``           ``+ - * /`` on numbers
``{"neg": e}``                              ``-e``
``{"compare": op, "args": [a, b]}``         a boolean: two values compared (ir.OPS)
``{"cond": c}``                             a boolean: whether IR condition c holds
``{"actor": "username"}``                   who acts (``system`` for timers)
``{"actor_role": r}`` / ``{"actor_department": d}``   whether the actor holds r / is in d
``{"items": fn, "list": f, "where": c, "sub": s}``   ``any``/``all``/``count`` of the items
                                            of list field f where c holds; ``sum`` of s

Semantics (the same for every evaluator, since the values are computed once, here):

* a value built from a fact without a value has no value either (the fact is left out,
  so every comparison on it is false, as for an empty field);
* dates are day numbers and date-times seconds since the epoch (``ir.encode_value``); a
  date-time used where a date is meant is first turned into its company-local date;
* ``days_between(a, b)`` is ``b - a`` in calendar days, ``working_days_between(a, b)``
  counts the company's working days after ``a`` up to and including ``b`` (negative when
  ``b`` is earlier; no value over more than :data:`MAX_WORKDAY_SPAN` days),
  ``hours_since(a)`` and ``days_since(a)`` count from ``a`` to now;
* over a list field's items (an unset list has none): ``any`` is false and ``all`` true
  for no items, ``count`` counts, ``sum`` adds the items' values that are set;
* arithmetic results are rounded to 9 decimals (``0.1 + 0.2`` is ``0.3``); dividing by
  zero gives no value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.rules.ir import Cond, Scalar, fields_of
from core.rules.reference import holds

VExpr = dict[str, Any]

#: calendar days beyond which ``working_days_between`` has no value (ten years): a
#: date that far away is a typing mistake, and counting it would cost a request seconds
MAX_WORKDAY_SPAN = 3660

NUMBER_KINDS = frozenset({"number", "integer", "money"})
TEXT_KINDS = frozenset({"text", "longtext", "choice", "phone", "email", "person", "attachment"})

#: function name -> (argument kinds it takes (each a set), result kind, needs now)
FUNCTIONS: dict[str, tuple[tuple[frozenset[str], ...], str, bool]] = {
    "days_between": ((frozenset({"date", "datetime"}),) * 2, "integer", False),
    "working_days_between": ((frozenset({"date", "datetime"}),) * 2, "integer", False),
    "hours_since": ((frozenset({"datetime"}),), "number", True),
    "days_since": ((frozenset({"date", "datetime"}),), "integer", True),
}

#: conditions over the items of a list field
AGGREGATES = ("any", "all", "count", "sum")


#: operators spelled out in the names of derived facts (``_qty_gt_limit``)
_SPELLED = (
    ("<=", "le"),
    (">=", "ge"),
    ("==", "eq"),
    ("!=", "ne"),
    ("<", "lt"),
    (">", "gt"),
    ("+", "plus"),
    ("-", "minus"),
    ("*", "times"),
    ("/", "div"),
)


@dataclass(frozen=True)
class Env:
    """What a derived value may depend on besides the facts.

    ``now`` is the change's moment (seconds since the epoch), ``local_date`` turns such a
    moment into the company's date (a day number), ``workdays(a, b)`` counts working days
    in ``(a, b]`` on the company calendar. Without them (``None``) the values that need
    them have no value.
    """

    now: int | None = None
    local_date: Callable[[int], int] | None = None
    workdays: Callable[[int, int], int] | None = None
    username: str | None = None
    roles: frozenset[str] = frozenset()
    departments: frozenset[str] = frozenset()
    #: the items of the list fields derived values use, each item as facts
    lists: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    #: item conditions as Python functions (``Derivations.compiled``); None: walk the IR
    matcher: Callable[[Any], Callable[[Mapping[str, Any]], bool]] | None = None


@dataclass
class Derivations:
    """The derived facts of one procedure, in the order they are computed.

    Named values (the pack's ``derive:``) come first, then the values conditions
    derive inline, named after their text (``_days_between_shipped_on_found_on``); a
    leading ``_`` keeps them apart from fields, whose names start with a letter.
    """

    exprs: dict[str, tuple[VExpr, str]] = field(default_factory=dict)  # name -> (expr, kind)
    #: item conditions compiled to Python functions, by id of their IR (built on first use)
    _matchers: dict[int, Callable[[Mapping[str, Any]], bool]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def add(self, expr: VExpr, kind: str, text: str | None = None, name: str | None = None) -> str:
        for existing, (other, _) in self.exprs.items():
            if other == expr and (name is None or existing == name):
                return existing
        if name is None:
            spelled = (text or "value").lower()
            for op, word in _SPELLED:
                spelled = spelled.replace(op, f" {word} ")
            base = "_" + (re.sub(r"[^a-z0-9]+", "_", spelled).strip("_") or "v")
            base = base[:60]
            name, n = base, 1
            while name in self.exprs:
                n += 1
                name = f"{base}_{n}"
        self.exprs[name] = (expr, kind)
        return name

    def to_json(self) -> list[dict[str, Any]]:
        return [{"name": n, "expr": e, "kind": k} for n, (e, k) in self.exprs.items()]

    def compiled(self, cond: Cond) -> Callable[[Mapping[str, Any]], bool]:
        """``cond`` (an item condition of one of these values) as a function, built once."""
        fn = self._matchers.get(id(cond))
        if fn is None:
            fn = self._matchers[id(cond)] = matcher(cond)
        return fn

    def values(self) -> Iterable[tuple[VExpr, str]]:
        return self.exprs.values()

    @property
    def actor_roles(self) -> frozenset[str]:
        """The roles conditions ask the actor about (``"x" in actor.roles``)."""
        return frozenset(
            node["actor_role"]
            for e, _ in self.values()
            for node in _nodes(e)
            if "actor_role" in node
        )

    def lists(self) -> dict[str, frozenset[str]]:
        """The list fields whose items some derived value reads, each with the item
        fields it reads."""
        out: dict[str, set[str]] = {}
        for e, _ in self.values():
            for name, subs in _lists(e):
                out.setdefault(name, set()).update(subs)
        return {k: frozenset(v) for k, v in out.items()}


def _lists(expr: VExpr) -> Iterator[tuple[str, set[str]]]:
    if "items" in expr:
        subs = set(fields_of(expr["where"])) if "where" in expr else set()
        if "sub" in expr:
            subs.add(expr["sub"])
        for _, inner in expr.get("per_item", ()):
            subs.update(_fields(inner))
        yield expr["list"], subs
    for inner in expr.get("args") or ([expr["neg"]] if "neg" in expr else []):
        yield from _lists(inner)


def _nodes(expr: VExpr) -> Iterator[VExpr]:
    """Every node of a value expression, values computed per list item included."""
    yield expr
    for inner in expr.get("args") or ([expr["neg"]] if "neg" in expr else []):
        yield from _nodes(inner)
    for _, inner in expr.get("per_item", ()):
        yield from _nodes(inner)


def plain(expr: VExpr) -> bool:
    """Whether a value needs nothing but the facts it reads: no moment (``now``,
    ``today``, ``hours_since``), no calendar, no actor — arithmetic and comparisons of
    facts and constants only."""
    return all("call" not in n and _PLAIN_KEYS.issuperset(n) for n in _nodes(expr))


_PLAIN_KEYS = frozenset({"field", "const", "kind", "arith", "compare", "neg", "cond", "args"})


def _fields(expr: VExpr) -> Iterator[str]:
    """The facts a value expression reads."""
    if "field" in expr:
        yield expr["field"]
    if "cond" in expr:
        yield from fields_of(expr["cond"])
    for inner in expr.get("args") or ([expr["neg"]] if "neg" in expr else []):
        yield from _fields(inner)


def matcher(cond: Cond) -> Callable[[Mapping[str, Any]], bool]:
    """``cond`` as a Python function of the facts: the reference evaluator's semantics
    (``core.rules.reference.holds``), without walking the IR for every list item."""
    if "and" in cond:
        parts = [matcher(c) for c in cond["and"]]
        return lambda f: all(p(f) for p in parts)
    if "or" in cond:
        parts = [matcher(c) for c in cond["or"]]
        return lambda f: any(p(f) for p in parts)
    if "set" in cond:
        name = cond["set"]
        return lambda f: name in f
    if "unset" in cond:
        name = cond["unset"]
        return lambda f: name not in f
    if cond.get("true") is True:
        return lambda f: True
    name, want, op = cond["field"], cond["value"], _COMPARE[cond["cmp"]]
    want_bool, want_str = isinstance(want, bool), isinstance(want, str)

    def test(f: Mapping[str, Any]) -> bool:
        have = f.get(name, _MISSING)
        if have is _MISSING:
            return False
        # bool is an int in Python; the IR keeps them apart, and strings from numbers
        if isinstance(have, bool) != want_bool or isinstance(have, str) != want_str:
            return False
        return bool(op(have, want))

    return test


_MISSING = object()


def compute(derivations: Derivations, facts: dict[str, Scalar], env: Env) -> dict[str, Scalar]:
    """Add every derived fact that has a value to ``facts`` (in place) and return it.

    A value that cannot be computed — a moment beyond the calendar's years (Python's
    datetimes end at 9999), a product too large to be finite — has no value: a case's
    odd data makes a comparison false, never an action fail."""
    for name, (expr, _kind) in derivations.exprs.items():
        try:
            value = evaluate(expr, facts, env)
        except (ArithmeticError, ValueError):  # OverflowError is an ArithmeticError
            value = None
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        if value is not None:
            facts[name] = value
        else:
            facts.pop(name, None)
    return facts


def evaluate(expr: VExpr, facts: Mapping[str, Scalar], env: Env) -> Scalar | None:
    """The value of one expression (None: no value)."""
    if "field" in expr:
        return facts.get(expr["field"])
    if "cond" in expr:
        return holds(expr["cond"], facts)
    if "items" in expr:
        return _aggregate(expr, env.lists.get(expr["list"], ()), env.matcher, env)
    if "const" in expr:
        return expr["const"]
    if "now" in expr:
        return env.now
    if "today" in expr:
        return _day(env.now, "datetime", env) if env.now is not None else None
    if "actor" in expr:
        return env.username
    if "actor_role" in expr:
        return None if env.username is None else expr["actor_role"] in env.roles
    if "actor_department" in expr:
        return None if env.username is None else expr["actor_department"] in env.departments
    if "neg" in expr:
        v = evaluate(expr["neg"], facts, env)
        return None if not _is_number(v) else -v  # type: ignore[operator]  # a number
    args = [evaluate(a, facts, env) for a in expr["args"]]
    if any(a is None for a in args):
        return None
    if "call" in expr:
        return _call(expr["call"], [a.get("kind", "") for a in expr["args"]], args, env)
    if "arith" in expr:
        a, b = args
        if not (_is_number(a) and _is_number(b)):
            return None
        op = expr["arith"]
        if op == "/" and b == 0:
            return None
        result = _ARITH[op](a, b)
        return round(result, 9) if isinstance(result, float) else result
    if "compare" in expr:
        a, b = args
        if isinstance(a, bool) != isinstance(b, bool) or isinstance(a, str) != isinstance(b, str):
            return None
        return bool(_COMPARE[expr["compare"]](a, b))
    raise ValueError(f"not a value expression: {expr!r}")


_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
}

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
}


def _with_values(item: Mapping[str, Any], per_item: list[Any], env: Env) -> dict[str, Any]:
    facts = dict(item)
    for name, inner in per_item:
        try:
            value = evaluate(inner, facts, env)
        except (ArithmeticError, ValueError):
            value = None
        if value is not None:
            facts[name] = value
    return facts


def item_matches(
    items: Sequence[Mapping[str, Any]],
    where: Cond,
    per_item: Sequence[Any] | None,
    env: Env,
    test: Callable[[Mapping[str, Any]], bool] | None = None,
) -> list[bool]:
    """Whether item condition ``where`` holds for each of ``items`` (each item as facts),
    after the values it derives per item (``per_item``: ``due_on < today``, ``qty > limit``)
    were computed on that item; ``test`` is ``where`` compiled already (:func:`matcher`)."""
    check = test if test is not None else (lambda it: holds(where, it))
    if per_item:
        items = [_with_values(it, list(per_item), env) for it in items]
    return [check(it) for it in items]


def _aggregate(
    expr: VExpr,
    items: Sequence[Mapping[str, Any]],
    matcher: Callable[[Any], Callable[[Mapping[str, Any]], bool]] | None,
    env: Env,
) -> Scalar:
    fn, where = expr["items"], expr.get("where")
    if fn == "sum":
        values: list[int | float] = [
            v for it in items if isinstance(v := it.get(expr["sub"]), int | float)
        ]
        total = sum(v for v in values if not isinstance(v, bool))
        return round(total, 9) if isinstance(total, float) else total
    if where is None:
        matches = [True] * len(items)
    else:
        test = matcher(where) if matcher is not None else None
        matches = item_matches(items, where, expr.get("per_item"), env, test)
    if fn == "any":
        return any(matches)
    if fn == "all":
        return all(matches)
    return sum(matches)  # count


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _day(value: Any, kind: str, env: Env) -> int | None:
    """A date or date-time fact as a day number (company-local for a date-time)."""
    if kind == "date":
        return int(value)
    if env.local_date is None:
        return int(value) // 86400 + 719163  # UTC date: 1970-01-01 is day 719163
    return env.local_date(int(value))


def _call(fn: str, kinds: list[str], args: list[Any], env: Env) -> Scalar | None:
    if fn == "days_between":
        a, b = (_day(v, k, env) for v, k in zip(args, kinds, strict=True))
        return None if a is None or b is None else b - a
    if fn == "working_days_between":
        a, b = (_day(v, k, env) for v, k in zip(args, kinds, strict=True))
        if a is None or b is None or env.workdays is None or abs(b - a) > MAX_WORKDAY_SPAN:
            return None
        return env.workdays(a, b) if b >= a else -env.workdays(b, a)
    if env.now is None:
        return None
    if fn == "hours_since":
        return round((env.now - int(args[0])) / 3600, 6)
    if fn == "days_since":
        a = _day(args[0], kinds[0], env)
        today = _day(env.now, "datetime", env)
        return None if a is None or today is None else today - a
    raise ValueError(f"unknown function {fn!r}")
