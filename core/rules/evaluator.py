"""Choosing a rule evaluator.

Every evaluator has the same two methods::

    evaluate(ruleset: RuleSet, facts: Mapping[str, Scalar]) -> frozenset[str]
    close() -> None

``evaluate`` returns the ids of the rules whose condition holds; it never applies
effects (the case service does that inside the action's transaction). It raises
:class:`core.errors.EngineUnavailable` when the engine crashed or hung; the caller's
transaction then rolls back and the next call gets a fresh engine.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Protocol

from core.rules.ir import RuleSet, Scalar

KINDS = ("durable", "durable-isolated", "durable-inprocess", "reference")


class Evaluator(Protocol):
    """A rule evaluator: the ids of the rules whose condition holds for some facts."""

    name: str

    def evaluate(self, ruleset: RuleSet, facts: Mapping[str, Scalar]) -> frozenset[str]: ...

    def close(self) -> None: ...


def default_kind() -> str:
    """durable_rules where it can be built (Python < 3.13), else the reference evaluator."""
    return "durable" if sys.version_info < (3, 13) else "reference"


def make_evaluator(kind: str | None = None) -> Evaluator:
    """Build the evaluator named ``kind`` (see :data:`KINDS`).

    ``durable`` evaluates in this process the RuleSets that lie well inside what
    durable_rules' C core was measured to handle, and the others in a supervised child
    (core.rules.analysed); ``durable-isolated`` runs every evaluation in the child, so a
    crash or hang in the C core costs one action a 503, never the server;
    ``durable-inprocess`` calls it in this process whatever the RuleSet (benchmarks
    only); ``reference`` is the pure-Python evaluator.
    """
    kind = kind or default_kind()
    if kind == "reference":
        # each engine is imported only when chosen: the C module must not load where unused
        from core.rules.reference import ReferenceEvaluator  # imported only when chosen

        return ReferenceEvaluator()
    if kind == "durable":
        # each engine is imported only when chosen
        from core.rules.analysed import AnalysedDurableEvaluator  # only when chosen

        return AnalysedDurableEvaluator()
    if kind == "durable-isolated":
        # each engine is imported only when chosen
        from core.rules.isolation import IsolatedDurableEvaluator  # only when chosen

        return IsolatedDurableEvaluator()
    if kind == "durable-inprocess":
        # each engine is imported only when chosen
        from core.rules.durable_runtime import DurableEvaluator  # loads the C core: on demand

        return DurableEvaluator()
    raise ValueError(f"unknown rules engine {kind!r}; choose one of {', '.join(KINDS)}")
