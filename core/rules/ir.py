"""The intermediate form (IR) of conditions, shared by every evaluator.

A condition in a rule file (``category == "quality" and affected_qty >= 100``) is parsed
by :mod:`core.rules.expr`, checked against the declared fields and compiled to this IR.
The IR is plain JSON-able data so it can be stored with a procedure version, sent to the
isolated engine process and compared in tests:

``{"and": [c, ...]}``                     all hold (an empty list holds)
``{"or": [c, ...]}``                      at least one holds
``{"cmp": op, "field": f, "value": v}``   op is one of eq ne lt le gt ge
``{"set": f}`` / ``{"unset": f}``         the fact has / lacks a value for f
``{"true": True}``                        always holds (a rule with no ``when``)

There is no ``not``: the parser pushes negation down to the leaves (De Morgan, ``lt`` ↔
``ge``, ``set`` ↔ ``unset``), because durable_rules' ``$not`` is one of the constructs
that crashes it. Values are str, int, float or bool only; dates and datetimes are encoded
as numbers by :func:`encode_value` on both sides, so every evaluator compares like with
like.

Semantics every evaluator must follow (the differential tests hold them to it):

* a comparison on a field the facts do not carry is false, whatever the operator
  (``ne`` included) — "unknown" never satisfies a rule by accident;
* numbers compare as numbers (int and float alike), strings as strings, booleans only
  with ``eq``/``ne``; the type checker never lets a string meet a number.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

Cond = dict[str, Any]
Scalar = str | int | float | bool

OPS = ("eq", "ne", "lt", "le", "gt", "ge")
NEGATED_OP = {"eq": "ne", "ne": "eq", "lt": "ge", "ge": "lt", "gt": "le", "le": "gt"}
TRUE: Cond = {"true": True}

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def encode_value(value: Any) -> Scalar | None:
    """Turn a field value into the scalar the evaluators compare.

    Dates become their proleptic ordinal (days), aware datetimes whole seconds since the
    epoch, numbers and strings stay as they are. ``None`` means "no value".
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in facts: store UTC-aware datetimes")
        return int((value - _EPOCH).total_seconds())
    if isinstance(value, dt.date):
        return value.toordinal()
    raise TypeError(f"cannot use a {type(value).__name__} in a condition")


def fields_of(cond: Cond) -> Iterator[str]:
    """Every field a condition mentions (with repeats)."""
    if "and" in cond:
        for c in cond["and"]:
            yield from fields_of(c)
    elif "or" in cond:
        for c in cond["or"]:
            yield from fields_of(c)
    elif "cmp" in cond:
        yield cond["field"]
    elif "set" in cond:
        yield cond["set"]
    elif "unset" in cond:
        yield cond["unset"]


def leaves(cond: Cond) -> Iterator[Cond]:
    """Every comparison / presence test of a condition."""
    if "and" in cond:
        for c in cond["and"]:
            yield from leaves(c)
    elif "or" in cond:
        for c in cond["or"]:
            yield from leaves(c)
    elif "true" not in cond:
        yield cond


@dataclass(frozen=True)
class CompiledRule:
    """One rule as the evaluators see it: an id and a condition."""

    id: str
    cond: Cond


@dataclass(frozen=True)
class RuleSet:
    """The rules of one procedure version, ready for an evaluator.

    ``name`` is unique per procedure, version and company (durable_rules keeps ruleset
    names process-wide and can never redefine one). ``rules`` keep their declared order.
    """

    name: str
    rules: tuple[CompiledRule, ...]
    _index: dict[str, CompiledRule] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, name: str, rules: Iterable[CompiledRule]) -> RuleSet:
        rs = cls(name=name, rules=tuple(rules))
        rs._index.update({r.id: r for r in rs.rules})
        return rs

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "rules": [{"id": r.id, "cond": r.cond} for r in self.rules]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RuleSet:
        return cls.of(data["name"], (CompiledRule(r["id"], r["cond"]) for r in data["rules"]))
