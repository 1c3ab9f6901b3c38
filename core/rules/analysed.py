"""The ``durable`` rules engine: in this process where the RuleSet allows it, else in the
supervised child.

A call to the child costs a pipe round trip, ~100-175 µs on a 2-core machine (the write
wakes the child and the kernel switches to it) — several times the evaluation itself
for a pack's usual ten to fifty rules, and the largest single cost of an action. So each
RuleSet is analysed once (:func:`core.rules.durable_compiler.out_of_process_reason`):

* inside the in-process envelope — every table of the C core at a quarter to a half of
  the size measured to work, on top of the load-time limits every RuleSet has already
  passed — it is evaluated here, through :class:`core.rules.durable_runtime.DurableEvaluator`
  (one lock per C ruleset; the C module is loaded on the first such RuleSet);
* outside it, in the child of :class:`core.rules.isolation.IsolatedDurableEvaluator`, where
  a crash or a hang costs one action a 503 and never the server.

A RuleSet that makes the in-process engine report an error is moved to the child for
the rest of the process's life and that evaluation is retried there. Companies that
want every evaluation contained choose ``rules_engine: durable-isolated``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from core.errors import EngineUnavailable
from core.rules.durable_compiler import RulesetTooComplex, out_of_process_reason
from core.rules.ir import RuleSet, Scalar
from core.rules.isolation import IsolatedDurableEvaluator

if TYPE_CHECKING:  # types only: importing durable_runtime loads the C core, wanted on demand only
    from core.rules.durable_runtime import DurableEvaluator

log = logging.getLogger(__name__)


class AnalysedDurableEvaluator:
    """durable_rules in-process for the RuleSets that pass the analysis, else isolated."""

    name = "durable"

    def __init__(self, timeout: float = 2.0) -> None:
        self.isolated = IsolatedDurableEvaluator(timeout)
        self._here: DurableEvaluator | None = None
        self._lock = threading.Lock()
        #: RuleSet name -> None (evaluated here) or why it runs in the child
        self.placement: dict[str, str | None] = {}

    def evaluate(self, ruleset: RuleSet, facts: Mapping[str, Scalar]) -> frozenset[str]:
        if ruleset.name in self.placement:
            reason = self.placement[ruleset.name]
        else:
            reason = self._place(ruleset)
        if reason is not None:
            return self.isolated.evaluate(ruleset, facts)
        try:
            return self._in_process().evaluate(ruleset, facts)
        except RulesetTooComplex:
            raise
        except (EngineUnavailable, ValueError, RuntimeError) as exc:
            self.placement[ruleset.name] = f"the engine failed on it here: {exc}"
            log.warning("rules of %s now run in the isolated engine: %s", ruleset.name, exc)
            return self.isolated.evaluate(ruleset, facts)

    def _place(self, ruleset: RuleSet) -> str | None:
        try:
            reason = out_of_process_reason(ruleset)
        except Exception as exc:  # the analysis failing is a reason too
            reason = f"the analysis failed: {exc}"
        self.placement[ruleset.name] = reason
        return reason

    def _in_process(self) -> DurableEvaluator:
        if self._here is None:
            with self._lock:
                if self._here is None:
                    from core.rules.durable_runtime import DurableEvaluator  # loads the C core

                    self._here = DurableEvaluator()
        return self._here

    def close(self) -> None:
        self.isolated.close()
        if self._here is not None:
            self._here.close()
