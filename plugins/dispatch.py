"""Built-in plugin ``dispatch``: the ``dispatch`` effect and five strategies.

``- dispatch: {role: engineer, strategies: [skill, region, workload, round_robin], skill: category,
region: region, to_field: engineer}`` gathers the people of the company who hold ``role``
(with their ``skills``, ``region`` and ``location`` from the company config, and how many
open cases are assigned to them), tries the strategies in order and assigns the case to the
first choice — or, when every strategy passes, to the role's queue. The journal entry
``assigned`` carries the strategy, its reason and what every rung of the ladder said.

``narrow: [skill, region]`` first keeps, in order, only the candidates that fit the case
(those with the skill, then those of them in the region); a narrowing that would leave
nobody, or whose case field is empty, is skipped. The strategies then choose among the
candidates left (seed 000 B 1.3: by region and skills, weighing workload and distance).

Strategies (skill and region can also narrow):

``skill``
    people whose ``skills`` include the value of the case field ``skill:`` (e.g. the
    problem category); among them the least loaded. Passes when the field is empty or
    nobody has the skill.
``region``
    people whose ``region`` equals the case field ``region:``; among them the least loaded.
``workload``
    the person with the fewest open cases assigned; ties go to the one who waited longest
    in round-robin order.
``round_robin``
    everyone in turn (a per-company counter, so it survives restarts and is shared by
    all processes).
``nearest``
    the person whose ``location`` is closest (great-circle distance) to the case's
    coordinates, read from the two number fields named by ``location: [lat, lng]``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core import hookimpl
from core.cases.dispatch import (
    Candidate,
    Choice,
    DispatchRequest,
    Narrowing,
    Strategy,
    can_narrow,
    run_ladder,
)
from core.spec.definitions import KEY_RE, CompanyDef, PackDef
from core.spec.effects import Assignee, Change, EffectType, Problem, _fields_hint, _roles_hint
from core.spec.extensions import Extensions
from core.spec.roles import role_holders
from core.storage import counters, loads

# -- strategies ---------------------------------------------------------------------------


def _least_loaded(pool: Sequence[Candidate], request: DispatchRequest, scope: str) -> Candidate:
    """The least-loaded candidate of ``pool``; ties broken in turn (a counter per scope)."""
    low = min(c.open_cases for c in pool)
    tied = sorted((c for c in pool if c.open_cases == low), key=lambda c: c.username)
    if len(tied) == 1:
        return tied[0]
    return tied[(request.counter(scope) - 1) % len(tied)]


def _matching(
    candidates: Sequence[Candidate],
    request: DispatchRequest,
    key: str,
    matches: Callable[[Candidate, str], bool],
) -> tuple[str, list[Candidate]] | None:
    """The value of the case field named by ``args[key]`` and the candidates matching it;
    None when the effect names no such field or the case has no value in it."""
    field = request.args.get(key)
    wanted = request.fields.get(field) if field else None
    if not wanted:
        return None
    return str(wanted), [c for c in candidates if matches(c, str(wanted))]


def _among_matching(
    candidates: Sequence[Candidate],
    request: DispatchRequest,
    key: str,
    matches: Callable[[Candidate, str], bool],
    says: str,
) -> Choice | None:
    """The least loaded of the candidates matching the case field named by ``args[key]``."""
    found = _matching(candidates, request, key, matches)
    if found is None or not found[1]:
        return None
    wanted, pool = found
    who = _least_loaded(pool, request, f"dispatch:{key}:{request.args.get('role')}:{wanted}")
    return Choice(
        who.username,
        f"{says.format(wanted)} ({len(pool)} of {len(candidates)} do); {who.open_cases} open cases",
    )


class MatchingStrategy:
    """Among the people matching the case field the effect names under ``name`` (``skill:
    category``), the least loaded; as a narrowing, all of them."""

    def __init__(self, name: str, matches: Callable[[Candidate, str], bool], says: str) -> None:
        self.name, self.matches, self.says = name, matches, says

    def choose(self, candidates: Sequence[Candidate], request: DispatchRequest) -> Choice | None:
        return _among_matching(candidates, request, self.name, self.matches, self.says)

    def narrow(
        self, candidates: Sequence[Candidate], request: DispatchRequest
    ) -> Sequence[Candidate] | None:
        found = _matching(candidates, request, self.name, self.matches)
        return None if found is None else found[1]


#: ``skill``: among the people with the skill the case needs, the least loaded
SKILL = MatchingStrategy("skill", lambda c, v: v in c.skills, "has skill '{}'")
#: ``region``: among the people working in the case's region, the least loaded
REGION = MatchingStrategy("region", lambda c, v: c.region == v, "works in region '{}'")


class WorkloadStrategy:
    """``workload``: the person with the fewest open cases assigned."""

    name = "workload"

    def choose(self, candidates: Sequence[Candidate], request: DispatchRequest) -> Choice | None:
        who = _least_loaded(candidates, request, f"dispatch:workload:{request.args.get('role')}")
        loads = ", ".join(
            f"{c.username} {c.open_cases}" for c in sorted(candidates, key=lambda c: c.username)
        )
        return Choice(who.username, f"fewest open cases ({loads})")


class RoundRobinStrategy:
    """``round_robin``: everyone in turn, with a per-company counter."""

    name = "round_robin"

    def choose(self, candidates: Sequence[Candidate], request: DispatchRequest) -> Choice | None:
        ordered = sorted(candidates, key=lambda c: c.username)
        turn = request.counter(f"dispatch:rr:{request.args.get('role')}")
        who = ordered[(turn - 1) % len(ordered)]
        return Choice(who.username, f"turn {turn} of the round robin over {len(ordered)} people")


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle (haversine) distance in kilometres."""
    lat1, lng1, lat2, lng2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(h))


class NearestStrategy:
    """``nearest``: the person based closest to the case's coordinates."""

    name = "nearest"

    def choose(self, candidates: Sequence[Candidate], request: DispatchRequest) -> Choice | None:
        names = request.args.get("location") or []
        if len(names) != 2:
            return None
        lat, lng = (request.fields.get(n) for n in names)
        if not isinstance(lat, int | float) or not isinstance(lng, int | float):
            return None
        placed = [
            (distance_km((float(lat), float(lng)), c.location), c.username, c)
            for c in candidates
            if c.location is not None
        ]
        if not placed:
            return None
        km, _, who = min(placed)
        return Choice(who.username, f"nearest: {km:.1f} km away")


BUILTIN_STRATEGIES: tuple[Strategy, ...] = (
    SKILL,
    REGION,
    WorkloadStrategy(),
    RoundRobinStrategy(),
    NearestStrategy(),
)

# -- the effect ---------------------------------------------------------------------------


class DispatchArgs(BaseModel):
    """``dispatch: {role, strategies, skill, region, location, to_field, assign}``"""

    model_config = ConfigDict(extra="forbid")
    role: str = Field(pattern=KEY_RE)
    # strategies that first narrow the pool, in order (each skipped if it would empty it)
    narrow: list[str] = []
    strategies: list[str] = Field(default=["workload", "round_robin"], min_length=1)
    skill: str | None = Field(default=None, pattern=KEY_RE)
    region: str | None = Field(default=None, pattern=KEY_RE)
    location: list[str] | None = Field(default=None, min_length=2, max_length=2)
    to_field: str | None = Field(default=None, pattern=KEY_RE)
    assign: bool = True  # false: only fill to_field (a suggestion staff confirm)

    @model_validator(mode="after")
    def _something_to_do(self) -> DispatchArgs:
        if not self.assign and not self.to_field:
            raise ValueError("with assign: false give to_field (where the choice is written)")
        return self


def _check(args: DispatchArgs, pack: PackDef, extensions: Extensions) -> list[Problem]:
    out: list[Problem] = []
    strategies = extensions.strategies
    if args.role not in pack.roles:
        out.append(
            Problem(("role",), "K104", f"unknown role '{args.role}'", _roles_hint(args.role, pack))
        )
    for key in ("narrow", "strategies"):
        for i, name in enumerate(getattr(args, key)):
            if name not in strategies:
                guess = difflib.get_close_matches(name, list(strategies), n=1)
                out.append(
                    Problem(
                        (key, i),
                        "K620",
                        f"unknown dispatch strategy '{name}'",
                        f"strategies: {', '.join(sorted(strategies))}"
                        + (f" (did you mean '{guess[0]}'?)" if guess else ""),
                    )
                )
            elif key == "narrow" and not can_narrow(strategies[name]):
                narrowing = sorted(n for n, s in strategies.items() if can_narrow(s))
                out.append(
                    Problem(
                        (key, i),
                        "K185",
                        f"dispatch strategy '{name}' chooses one person and cannot narrow the pool",
                        f"strategies that narrow: {', '.join(narrowing)}; "
                        f"put '{name}' under strategies:",
                    )
                )
    for key in ("skill", "region", "to_field"):
        name = getattr(args, key)
        if name and name not in pack.fields:
            out.append(Problem((key,), "K106", f"unknown field '{name}'", _fields_hint(name, pack)))
    if (
        args.to_field
        and args.to_field in pack.fields
        and pack.fields[args.to_field].type != "person"
    ):
        out.append(
            Problem(
                ("to_field",),
                "K111",
                f"field '{args.to_field}' is a {pack.fields[args.to_field].type}, not a person",
            )
        )
    for i, name in enumerate(args.location or []):
        fdef = pack.fields.get(name)
        if fdef is None:
            out.append(
                Problem(
                    ("location", i), "K106", f"unknown field '{name}'", _fields_hint(name, pack)
                )
            )
        elif fdef.type not in ("number", "integer"):
            out.append(
                Problem(("location", i), "K111", f"field '{name}' is a {fdef.type}, not a number")
            )
    return out


def candidates(
    conn: Any, company_id: int, company: CompanyDef, procedure: str, role: str
) -> list[Candidate]:
    names = role_holders(company, procedure, role)
    if not names:
        return []
    # each person's open cases, kept in the transaction of every change of a case: one
    # lookup per person, however long their queue or the company's history
    load = loads.of(conn, company_id, "person", names)
    out = []
    for username in names:
        p = company.people[username]
        out.append(
            Candidate(
                username,
                p.name,
                frozenset(p.skills),
                p.region,
                p.location,
                load[username],
            )
        )
    return out


def _apply(change: Change, args: DispatchArgs, rule_id: str) -> None:
    ctx = change.context
    conn, company_id, company = ctx["conn"], ctx["company_id"], ctx["company"]
    pool = candidates(conn, company_id, company, change.procedure.key, args.role)
    request = DispatchRequest(
        company.company,
        change.case_number,
        dict(change.fields),
        args.model_dump(),
        counter=lambda scope: counters.bump(conn, company_id, scope),
    )
    strategies = ctx["extensions"].strategies
    outcome = run_ladder(
        [strategies[s] for s in args.strategies],
        pool,
        request,
        [cast(Narrowing, strategies[s]) for s in args.narrow],  # checked at load (K185)
    )
    before = [a.to_json() for a in change.assignees]
    if outcome.choice is not None:
        who = Assignee("person", outcome.choice.username)
        reason = f"{outcome.strategy}: {outcome.choice.reason}"
    else:
        who = Assignee("role", args.role)
        reason = f"nobody eligible for {', '.join(args.strategies)}: the {args.role} queue"
    if args.to_field and outcome.choice is not None:
        old = change.fields.get(args.to_field)
        if old != outcome.choice.username:
            change.fields[args.to_field] = outcome.choice.username
            change.note(
                "field_set", rule_id, field=args.to_field, old=old, new=outcome.choice.username
            )
    entry = {
        "chosen": outcome.choice.username if outcome.choice else None,
        "strategy": outcome.strategy,
        "reason": reason,
        "rungs": outcome.rungs,
        "candidates": len(pool),
    }
    if args.assign:
        change.assignees[:] = [who]
        change.note("assigned", rule_id, assignees=[who.to_json()], previous=before, dispatch=entry)
    else:
        change.note("dispatch_suggested", rule_id, field=args.to_field, dispatch=entry)


DISPATCH = EffectType(
    "dispatch",
    DispatchArgs,
    _apply,
    _check,
    "choose an assignee among the people holding a role (skill, region, workload, "
    "round robin, nearest) with a fallback ladder; the choice and its reason are journaled",
)


@hookimpl
def kefu_effect_types() -> list[EffectType]:
    return [DISPATCH]


@hookimpl
def kefu_dispatch_strategies() -> list[Strategy]:
    return list(BUILTIN_STRATEGIES)
