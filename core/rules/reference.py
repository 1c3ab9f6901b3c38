"""Pure-Python evaluator of the IR: the oracle for durable_rules and the fallback engine.

It follows the semantics written in :mod:`core.rules.ir` and nothing else; the
differential tests compare it with the durable_rules adapter on every scenario and on
generated facts.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from core.rules.ir import Cond, RuleSet, Scalar

_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


def holds(cond: Cond, facts: Mapping[str, Scalar]) -> bool:
    """Whether ``cond`` holds for ``facts`` (scalars, as ``ir.encode_value`` makes them)."""
    if "and" in cond:
        return all(holds(c, facts) for c in cond["and"])
    if "or" in cond:
        return any(holds(c, facts) for c in cond["or"])
    if "cmp" in cond:
        name = cond["field"]
        if name not in facts:
            return False
        have, want = facts[name], cond["value"]
        # bool is an int in Python; the IR keeps them apart.
        if isinstance(have, bool) != isinstance(want, bool):
            return False
        if isinstance(have, str) != isinstance(want, str):
            return False
        return bool(_CMP[cond["cmp"]](have, want))
    if "set" in cond:
        return cond["set"] in facts
    if "unset" in cond:
        return cond["unset"] not in facts
    if cond.get("true") is True:
        return True
    raise ValueError(f"not an IR condition: {cond!r}")


class ReferenceEvaluator:
    """Evaluates a :class:`RuleSet` rule by rule in Python."""

    name = "reference"

    def evaluate(self, ruleset: RuleSet, facts: Mapping[str, Scalar]) -> frozenset[str]:
        return frozenset(r.id for r in ruleset.rules if holds(r.cond, facts))

    def close(self) -> None:
        pass
