"""Dispatch: choosing the person a case goes to, with a fallback ladder and a journaled reason.

The ``dispatch`` effect (plugins/dispatch.py) gathers the **candidates** — the people of the
company who hold the role asked for, with their skills, region, location and open
workload — and tries the **strategies** it names in order. Each strategy either chooses
one candidate (with a reason) or passes (nobody eligible for it); the first choice wins.
When every strategy passes, the case stays with the step's role queue, and the journal
says so. Strategies come from plugins through ``kefu_dispatch_strategies``.

Before the ladder, **narrowing** strategies (those with a ``narrow`` method, e.g. skill and
region) may keep only the candidates that fit the case, one after the other: seed 000's
repair desk chooses "by the engineer's region *and* skills, weighing workload and
distance" (B 1.3), which is a narrowing by skill, then by region, then a choice among
those left by distance or workload. A narrowing that would leave nobody, or whose case
field is empty, is skipped and the pool stays as it was: narrowing never empties it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Candidate:
    """A person who may take the case."""

    username: str
    name: str
    skills: frozenset[str] = frozenset()
    region: str | None = None
    location: tuple[float, float] | None = None
    open_cases: int = 0
    last_assigned_at: dt.datetime | None = None


@dataclass(frozen=True)
class DispatchRequest:
    """What is being dispatched: the company, the case's number and fields, the effect's arguments.

    ``counter(scope)`` increments and returns a per-company counter kept in the action's
    transaction (round-robin uses it).
    """

    company: str
    case_number: str
    fields: Mapping[str, Any]
    args: Mapping[str, Any]
    counter: Callable[[str], int] = field(default=lambda scope: 0, compare=False)


@dataclass(frozen=True)
class Choice:
    """The person a strategy chose and why (the reason is journaled)."""

    username: str
    reason: str


class Strategy(Protocol):
    """Chooses one of the candidates, or passes (``None``) when none is eligible for it."""

    name: str

    def choose(
        self, candidates: Sequence[Candidate], request: DispatchRequest
    ) -> Choice | None: ...


class Narrowing(Protocol):
    """A strategy that can also narrow the pool: the candidates fitting the case, or
    ``None`` when the case does not say (its field is empty)."""

    name: str

    def narrow(
        self, candidates: Sequence[Candidate], request: DispatchRequest
    ) -> Sequence[Candidate] | None: ...


def can_narrow(strategy: Strategy) -> bool:
    """Whether ``strategy`` can narrow the pool (has a ``narrow`` method)."""
    return callable(getattr(strategy, "narrow", None))


def narrow_pool(
    narrowing: Sequence[Narrowing], candidates: Sequence[Candidate], request: DispatchRequest
) -> tuple[list[Candidate], list[dict[str, str]]]:
    """Apply each narrowing in order; one that would leave nobody (or does not apply) is
    skipped. Returns the pool left and what each narrowing did (for the journal)."""
    pool = list(candidates)
    said: list[dict[str, str]] = []
    for n in narrowing:
        if not pool:
            break
        kept = n.narrow(pool, request)
        if kept is None:
            said.append({"narrow": n.name, "result": "skipped: the case does not say"})
            continue
        names = {c.username for c in pool}
        kept = [c for c in kept if c.username in names]
        if not kept:
            said.append({"narrow": n.name, "result": f"skipped: none of the {len(pool)} left fits"})
            continue
        said.append(
            {
                "narrow": n.name,
                "result": f"kept {len(kept)} of {len(pool)}: "
                + ", ".join(sorted(c.username for c in kept)),
            }
        )
        pool = kept
    return pool, said


@dataclass
class Outcome:
    """The ladder's result: a choice (or None: the role queue) and what each rung said."""

    choice: Choice | None
    strategy: str | None
    rungs: list[dict[str, str]]


def run_ladder(
    strategies: Sequence[Strategy],
    candidates: Sequence[Candidate],
    request: DispatchRequest,
    narrowing: Sequence[Narrowing] = (),
) -> Outcome:
    """Narrow the pool (``narrowing``, in order), then try the strategies in order on what
    is left; the first that chooses a candidate wins."""
    if not candidates:
        return Outcome(None, None, [{"strategy": "-", "result": "nobody holds the role"}])
    candidates, rungs = narrow_pool(narrowing, candidates, request)
    for s in strategies:
        choice = s.choose(candidates, request)
        if choice is not None and any(c.username == choice.username for c in candidates):
            rungs.append(
                {"strategy": s.name, "result": f"chose {choice.username}: {choice.reason}"}
            )
            return Outcome(choice, s.name, rungs)
        rungs.append(
            {
                "strategy": s.name,
                "result": "passed: "
                + (
                    "nobody eligible"
                    if choice is None
                    else f"chose {choice.username}, who is not a candidate"
                ),
            }
        )
    return Outcome(None, None, rungs)
