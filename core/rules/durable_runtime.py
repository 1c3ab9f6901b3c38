"""Evaluating RuleSets with durable_rules' C module (the only module that imports it).

:mod:`core.rules.durable_compiler` turns a RuleSet into C rulesets and says how to
encode facts; this module drives the C module ``durable_rules_engine`` directly (no
``engine.Host``, no callbacks, no timers) with the result:

* **Stateless evaluation**: each C ruleset has one reused session (``sid``); an
  evaluation asserts one fact, drains the fired actions, retracts the fact and drains
  again, so the session is clean for the next case. A new session is first *primed*
  with the sentinel fact: the C core crashes when ``delete_state`` runs on a session in
  which no action ran, and priming runs one; it also consumes the matches of the *state
  fact* the core adds to every new session (it lacks every property, so it matches
  every rule made only of ``unset`` tests) before a real case is asserted. Only messages
  that carry the asserted fact's own id are counted.
* **Recovery**: a session that saw any error is dropped and the next evaluation starts
  on a fresh one (see :meth:`_Chunk._recover`).

In production this runs in the supervised child process of :mod:`core.rules.isolation`.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import EngineUnavailable
from core.rules.durable_compiler import (
    SENTINEL_PROP,
    SENTINEL_RULE,
    ChunkPlan,
    FactKey,
    RulesetTooComplex,
    compile_ruleset,
    fact_body,
    fact_keys,
    same_rules,
)
from core.rules.ir import RuleSet, Scalar

# The C module is imported on first use, not with this module: where it cannot be built
# (Python 3.13+) choosing this engine is then an EngineUnavailable that names the
# alternative, not an ImportError.
_dre: Any = None


def _engine() -> Any:
    global _dre
    if _dre is None:
        try:
            # the C module loads on first use, so importing kefu never needs it built
            import durable_rules_engine
        except ImportError as exc:  # pragma: no cover - only where durable is absent
            raise EngineUnavailable(
                "durable_rules is not installed (it cannot be built on Python 3.13+); "
                "use rules_engine: reference"
            ) from exc
        _dre = durable_rules_engine
    return _dre


class DurableEngineError(EngineUnavailable):
    """The C core reported an error; the session was reset and the action can be retried."""


# -- evaluating through the C module -----------------------------------------------------
class _Chunk:
    """One compiled C ruleset with its reused session. Guarded by ``lock``: the C core
    has no locks, and assert → drain → retract → drain must not interleave."""

    def __init__(self, plan: ChunkPlan, cname: str) -> None:
        self.plan = plan
        self.cname = cname
        self.ids = [r.rule_id for r in plan.rules]
        self.lock = threading.Lock()
        self.definition = plan.definition_json()
        self.handle = _dre.create_ruleset(cname, self.definition)
        self.generation = 0
        self.sid = "s0"
        self.primed = False
        self.abandoned = 0
        self.closed = False
        self.seq = itertools.count(1)

    def evaluate(self, body: str, present: Iterable[str], out: set[str]) -> None:
        """Assert the fact (``body``: its properties as JSON text, shared by all chunks),
        collect the rules it fires, retract it. ``present``: the fields it carries."""
        if not self.plan.matches_empty and self.plan.fields.isdisjoint(present):
            return  # no rule of this chunk can match: skip the round trip
        with self.lock:
            if self.closed:  # close() raced with this call: the handle is gone
                raise EngineUnavailable("the rules engine was closed")
            # A fresh id per fact: a fact left behind by a failed retract can never make
            # the next assert a "duplicate" that is silently not evaluated.
            fid = f"f{next(self.seq)}"
            fact = f'{{"id":"{fid}","sid":"{self.sid}"{body}}}'
            try:
                if not self.primed:
                    self._prime()
                h = self.handle
                code, off = _dre.assert_fact(h, fact)
                if code == 2:  # "observed": a fact with this id exists — never expected
                    raise _SessionBroken("durable_rules saw the fact twice")
                fired: list[str] = []
                # Only messages about *this* fact count (the session's state fact and
                # the sentinel were consumed by priming, but belt and braces).
                self._drain(off, f'"m":{{"id":"{fid}"', fired)
                _, off = _dre.retract_fact(h, fact)
                self._drain(off, None, None)
            except BaseException as exc:
                # Anything between an action's start and its completion leaves the
                # session leased for 30-60 s, after which it would silently fire nothing:
                # never reuse a session that saw an exception, whatever it was.
                self._recover()
                if isinstance(exc, _dre.error | MemoryError | _SessionBroken):
                    raise DurableEngineError(
                        f"durable_rules failed on '{self.cname}': {exc}; the session was "
                        "reset, the next evaluation starts clean",
                        ruleset=self.cname,
                    ) from exc
                raise
            ids = self.ids
            for name in fired:
                if name != SENTINEL_RULE:
                    out.add(ids[int(name[1:])])

    def _drain(self, off: int, marker: str | None, fired: list[str] | None) -> None:
        r = _dre.start_action_for_state(self.handle, off)
        if not r:
            return
        msg = r[1]
        while msg:
            # a message is {"<rule name>":{"m":<the fact as asserted>}}
            if fired is not None and marker in msg:
                fired.append(msg[2 : msg.index('"', 2)])
            msg = _dre.complete_and_start_action(self.handle, off)

    def _prime(self) -> None:
        """Start the session with the sentinel fact: this runs at least one action (so
        delete_state is safe from now on) and consumes the matches of the state fact the
        core creates with the session (it lacks every property, so it matches every rule
        made only of absence tests)."""
        fact = json.dumps(
            {"id": "sentinel", "sid": self.sid, SENTINEL_PROP: 1}, separators=(",", ":")
        )
        _, off = _dre.assert_fact(self.handle, fact)
        fired: list[str] = []
        self._drain(off, '"m":{"id":"sentinel"', fired)
        if SENTINEL_RULE not in fired:
            raise _SessionBroken("the sentinel rule did not fire while priming a session")
        _, off = _dre.retract_fact(self.handle, fact)
        self._drain(off, None, None)
        self.primed = True

    def _recover(self) -> None:
        """Drop the current session and move to a fresh session id.

        After an error the session may be half-updated. A primed session is deleted,
        after one more sentinel action so that an action has surely run in it (the C core
        crashes when delete_state runs on a session in which no action ran); a session
        that failed while being created is left alone — touching it at all (get_state,
        delete_state, another assert) was measured to SIGSEGV."""
        old, was_primed = self.sid, self.primed
        self.generation += 1
        self.sid = f"s{self.generation}"
        self.primed = False
        if was_primed:
            try:
                fact = json.dumps(
                    {"id": f"x{self.generation}", "sid": old, SENTINEL_PROP: 1},
                    separators=(",", ":"),
                )
                _, off = _dre.assert_fact(self.handle, fact)
                self._drain(off, None, None)
            except Exception:  # best effort; the delete below is what matters
                pass
            try:
                _dre.delete_state(self.handle, old)
                return
            except Exception:
                pass
        self.abandoned += 1
        if self.abandoned > 512:
            # An abandoned session keeps one of the ruleset's 1,024 session slots; before
            # they run out, build the C ruleset again (the C core does not mind the name).
            self.handle = _dre.create_ruleset(self.cname, self.definition)
            self.abandoned = 0

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            if self.primed:
                try:
                    _dre.delete_state(self.handle, self.sid)
                except Exception:
                    pass
            # Only when no session is poisoned: deleteRuleset frees the network the
            # abandoned sessions still point into.
            if self.abandoned == 0:
                try:
                    _dre.delete_ruleset(self.handle)
                except Exception:
                    pass
            self.primed = False


class _SessionBroken(Exception):
    pass


@dataclass
class _Compiled:
    ruleset: RuleSet  # the object last seen with this name (identity fast path)
    always: frozenset[str]
    chunks: list[_Chunk] = field(default_factory=list)
    keys: list[FactKey] = field(default_factory=list)  # see durable_compiler.fact_keys


class DurableEvaluator:
    """Evaluates RuleSets with durable_rules' C core in this process.

    Thread-safe. Compiled C rulesets are cached by ``RuleSet.name`` for the life of the
    evaluator (``close`` frees them). A name must always come with the same rules: names
    carry procedure, version and company (see core.spec.procedures), and a different RuleSet
    under a known name is refused rather than silently answered with the old rules.
    """

    name = "durable-inprocess"

    def __init__(self) -> None:
        _engine()
        self._cache: dict[str, _Compiled] = {}
        self._compile_lock = threading.Lock()
        self._closed = False

    def _compiled(self, ruleset: RuleSet) -> _Compiled:
        c = self._cache.get(ruleset.name)
        if c is not None and c.ruleset is ruleset:
            return c
        with self._compile_lock:
            if self._closed:
                raise EngineUnavailable("the rules engine was closed")
            c = self._cache.get(ruleset.name)
            if c is not None:
                if not same_rules(c.ruleset, ruleset):
                    raise ValueError(
                        f"ruleset name {ruleset.name!r} was already compiled with other "
                        "rules; names must change with the rules (durable_rules keeps them)"
                    )
                c.ruleset = ruleset
                return c
            plan = compile_ruleset(ruleset)
            if plan.problems:
                p = plan.problems[0]
                more = f" (and {len(plan.problems) - 1} more)" if len(plan.problems) > 1 else ""
                raise RulesetTooComplex(f"{p.code}: {p.message}{more}", p.rule_id, p.code)
            c = _Compiled(ruleset, plan.always)
            try:
                for i, chunk in enumerate(plan.chunks):
                    c.chunks.append(_Chunk(chunk, f"{ruleset.name}#{i}"))
            except _dre.error as exc:  # the model in this module missed something
                raise DurableEngineError(
                    f"durable_rules refused ruleset {ruleset.name!r}: {exc}", ruleset=ruleset.name
                ) from exc
            c.keys = fact_keys(plan)
            self._cache[ruleset.name] = c
            return c

    def evaluate(self, ruleset: RuleSet, facts: Mapping[str, Scalar]) -> frozenset[str]:
        c = self._compiled(ruleset)
        out: set[str] = set(c.always)
        if c.chunks:
            body = fact_body(facts, c.keys)
            for chunk in c.chunks:
                chunk.evaluate(body, facts.keys(), out)
        return frozenset(out)

    def compiled_chunks(self, ruleset: RuleSet) -> int:
        """How many C rulesets a RuleSet became (diagnostics and tests)."""
        return len(self._compiled(ruleset).chunks)

    def close(self) -> None:
        with self._compile_lock:
            self._closed = True
            for c in self._cache.values():
                for chunk in c.chunks:
                    chunk.close()
            self._cache.clear()


# -- test hooks (reached only through IsolatedDurableEvaluator(allow_test_faults=True)) ---
def _provoke_segfault() -> None:
    """Reproduce a measured C-core crash: 70 rules made only of absence tests all match
    the state fact of a new session, so creating it fails with error 303 half-way;
    delete_state on that session then frees garbage pointers (SIGSEGV in 15 of 15 runs,
    whatever the heap held before; get_state only crashed on a fresh heap)."""
    dre = _engine()
    h = dre.create_ruleset(
        "kefu:test-fault:segv",
        json.dumps({f"r{i}": {"all": [{"m": {"$nex": {f"a{i}": 1}}}]} for i in range(70)}),
    )
    try:
        dre.assert_fact(h, '{"id":"1","sid":"poisoned","a0":1}')
    except dre.error:
        pass
    dre.delete_state(h, "poisoned")


def _provoke_hang() -> None:
    """Reproduce the measured endless loop: 512 conditions under one alpha node fill its
    512-slot table, and create_ruleset probes it forever, holding the GIL."""
    dre = _engine()
    dre.create_ruleset(
        "kefu:test-fault:hang",
        json.dumps({f"r{i}": {"all": [{"m": {"$eq": {"x": i}}}]} for i in range(513)}),
    )
