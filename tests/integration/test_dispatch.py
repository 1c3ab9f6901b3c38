"""The dispatch plugin: replay sets of cases and look at who got them (SQLite and PostgreSQL).

Fixture company acme (tests/fixtures/dispatch/config/acme.yaml) has four engineers:
e1 electrical/east (Shanghai), e2 electrical+plumbing/west, e3 plumbing/east, e4 no
skills/north (Beijing). The pack field-service picks the dispatch ladder with `mode`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from core.cases.service import CaseService
from core.storage import schema as t
from tests.helpers import FIXTURES, at_once, queue_loads

HERE = FIXTURES / "dispatch"
ENGINEERS = ["e1", "e2", "e3", "e4"]


pytestmark = pytest.mark.service(rules=HERE / "rules", config=HERE / "config")


def open_case(svc: CaseService, **fields: Any) -> Any:
    return svc.open_case("acme", "field-service", svc.actor("acme", "amy"), fields).case


def assigned_to(case: Any) -> str:
    assert len(case.assignees) == 1, case.assignees
    return str(case.assignees[0])


def dispatch_entry(svc: CaseService, case_id: int) -> dict[str, Any]:
    entries = [
        e for e in svc.journal("acme", case_id) if e["kind"] in ("assigned", "dispatch_suggested")
    ]
    assert len(entries) == 1, entries
    return dict(entries[0]["data"]["dispatch"])


def open_loads(svc: CaseService) -> dict[str, int]:
    loads = Counter[str]()
    with svc.db.read() as conn:
        from sqlalchemy import select

        rows = conn.execute(select(t.case.c.assignees).where(t.case.c.status == "open")).all()
    for (assignees,) in rows:
        for a in assignees:
            loads[a.removeprefix("person:")] += 1
    return {e: loads[e] for e in ENGINEERS}


def test_round_robin_is_even_and_in_turn(svc: CaseService) -> None:
    cases = [open_case(svc, mode="rr") for _ in range(40)]
    who = [assigned_to(c) for c in cases]
    assert Counter(who) == {f"person:{e}": 10 for e in ENGINEERS}
    assert who[:8] == [f"person:{e}" for e in ENGINEERS * 2]  # in turn, by user name
    # to_field: the chosen engineer is written to the case too
    assert [c.fields["engineer"] for c in cases[:4]] == ENGINEERS
    entry = dispatch_entry(svc, cases[5].id)
    assert entry["strategy"] == "round_robin" and entry["chosen"] == "e2"
    assert "turn 6 of the round robin over 4 people" in entry["reason"]


def test_workload_balances_uneven_starting_loads(svc: CaseService) -> None:
    for engineer, n in {"e1": 6, "e2": 3, "e4": 1}.items():
        for _ in range(n):
            open_case(svc, mode="preset", engineer=engineer)
    assert open_loads(svc) == {"e1": 6, "e2": 3, "e3": 0, "e4": 1}
    new = [open_case(svc, mode="workload") for _ in range(30)]
    assert open_loads(svc) == {e: 10 for e in ENGINEERS}  # 40 cases, 10 each
    # the least loaded took the first ones: e3 (0) before anybody else
    assert assigned_to(new[0]) == "person:e3"
    entry = dispatch_entry(svc, new[0].id)
    assert entry["reason"] == "workload: fewest open cases (e1 6, e2 3, e3 0, e4 1)"
    # closing cases frees people: e1 finishes five, the next five are theirs
    amy_closed = [c for c in _cases_of(svc, "e1")][:5]
    for cid in amy_closed:
        view = svc.get_case("acme", cid)
        svc.act("acme", cid, "finish", svc.actor("acme", "e1"), {}, view.version)
    after = [assigned_to(open_case(svc, mode="workload")) for _ in range(5)]
    assert after == ["person:e1"] * 5


def _cases_of(svc: CaseService, engineer: str) -> list[int]:
    from sqlalchemy import select

    with svc.db.read() as conn:
        return [
            r.case_id
            for r in conn.execute(
                select(t.case_assignee.c.case_id)
                .where(t.case_assignee.c.ref == engineer)
                .order_by(t.case_assignee.c.case_id)
            ).all()
        ]


def test_skills_are_respected_and_balanced_within_the_skilled(svc: CaseService) -> None:
    got: dict[str, Counter[str]] = {"electrical": Counter(), "plumbing": Counter()}
    for i in range(40):
        category = "electrical" if i % 2 == 0 else "plumbing"
        got[category][assigned_to(open_case(svc, mode="skill", category=category))] += 1
    # only the skilled get them, evenly: e2 has both skills and shares both piles
    assert set(got["electrical"]) <= {"person:e1", "person:e2"}
    assert set(got["plumbing"]) <= {"person:e2", "person:e3"}
    loads = open_loads(svc)
    assert loads["e4"] == 0
    assert (
        max(loads["e1"], loads["e2"], loads["e3"]) - min(loads["e1"], loads["e2"], loads["e3"]) <= 1
    )
    # nobody can fix gas: the skill rung passes, the workload rung chooses (the fallback ladder)
    gas = open_case(svc, mode="skill", category="gas")
    entry = dispatch_entry(svc, gas.id)
    assert entry["strategy"] == "workload" and entry["chosen"] == "e4"
    assert entry["rungs"][0] == {"strategy": "skill", "result": "passed: nobody eligible"}


def test_nobody_eligible_falls_back_to_the_role_queue(svc: CaseService) -> None:
    case = open_case(svc, mode="skill_only", category="gas")
    assert case.assignees == ["role:engineer"]
    entry = dispatch_entry(svc, case.id)
    assert (
        entry["chosen"] is None
        and entry["reason"] == "nobody eligible for skill: the engineer queue"
    )
    # staff in the queue still see it: any engineer may act on it
    svc.act("acme", case.id, "finish", svc.actor("acme", "e3"), {}, case.version)


def test_region_then_round_robin(svc: CaseService) -> None:
    east = [assigned_to(open_case(svc, mode="region", region="east")) for _ in range(6)]
    assert Counter(east) == {"person:e1": 3, "person:e3": 3}
    south = open_case(svc, mode="region", region="south")  # nobody works there
    entry = dispatch_entry(svc, south.id)
    assert entry["strategy"] == "round_robin"
    assert entry["rungs"][0]["result"] == "passed: nobody eligible"


def test_nearest_by_coordinates(svc: CaseService) -> None:
    beijing = open_case(svc, mode="nearest", lat=39.95, lng=116.30)
    assert assigned_to(beijing) == "person:e4"
    pudong = open_case(svc, mode="nearest", lat=31.29, lng=121.51)
    assert assigned_to(pudong) == "person:e2"
    assert "km away" in dispatch_entry(svc, pudong.id)["reason"]
    # no coordinates: the nearest rung passes, workload decides
    nowhere = open_case(svc, mode="nearest")
    assert dispatch_entry(svc, nowhere.id)["strategy"] == "workload"


def test_narrowing_by_skill_then_region_before_choosing(svc: CaseService) -> None:
    """Seed 000 B 1.3: by the engineer's region *and* skills, then distance and workload."""
    # e2 is the nearest electrician, but works in the west: only e1 is electrical and east
    east = open_case(
        svc, mode="narrowed", category="electrical", region="east", lat=31.29, lng=121.51
    )
    assert assigned_to(east) == "person:e1"
    entry = dispatch_entry(svc, east.id)
    assert entry["rungs"][:3] == [
        {"narrow": "skill", "result": "kept 2 of 4: e1, e2"},
        {"narrow": "region", "result": "kept 1 of 2: e1"},
        {"strategy": "nearest", "result": entry["rungs"][2]["result"]},
    ]
    assert entry["strategy"] == "nearest" and "km away" in entry["reason"]
    # nobody electrical works in the north: that narrowing is skipped, distance decides
    north = open_case(
        svc, mode="narrowed", category="electrical", region="north", lat=31.29, lng=121.51
    )
    assert assigned_to(north) == "person:e2"
    assert dispatch_entry(svc, north.id)["rungs"][1] == {
        "narrow": "region",
        "result": "skipped: none of the 2 left fits",
    }
    # nobody fixes gas; the east has e1 and e3; no coordinates: the less loaded of them
    gas = open_case(svc, mode="narrowed", category="gas", region="east")
    entry = dispatch_entry(svc, gas.id)
    assert entry["rungs"][:2] == [
        {"narrow": "skill", "result": "skipped: none of the 4 left fits"},
        {"narrow": "region", "result": "kept 2 of 4: e1, e3"},
    ]
    assert assigned_to(gas) == "person:e3"  # e1 already has a case, e3 none
    assert entry["strategy"] == "workload"
    # the case says nothing: no narrowing applies, everyone is a candidate
    blank = open_case(svc, mode="narrowed")
    assert [r["result"] for r in dispatch_entry(svc, blank.id)["rungs"][:2]] == [
        "skipped: the case does not say",
        "skipped: the case does not say",
    ]
    assert assigned_to(blank) == "person:e4"  # the only one without a case yet


def test_case_numbers_follow_the_company_format(svc: CaseService) -> None:
    numbers = [open_case(svc, mode="rr").number for _ in range(3)]
    year = svc.clock.now().year
    assert numbers == [f"FS-{year}-{n:05d}" for n in (1, 2, 3)]


def test_round_robin_stays_even_when_desks_dispatch_at_once(svc: CaseService) -> None:
    """8 threads open 10 round-robin cases each: the shared counter keeps the turns even."""
    amy = svc.actor("acme", "amy")
    got: list[str] = []

    def desk(_: int) -> None:
        for _ in range(10):
            got.append(
                assigned_to(svc.open_case("acme", "field-service", amy, {"mode": "rr"}).case)
            )

    at_once(8, desk)
    assert Counter(got) == {f"person:{e}": 20 for e in ENGINEERS}
    kept, counted = queue_loads(svc.db)
    assert kept == counted and sum(kept.values()) == 80


def test_loads_stay_exact_when_desks_open_and_finish_at_once(svc: CaseService) -> None:
    """6 threads each open 8 workload cases and finish every other one as they go: the
    loads dispatch reads, moved in each change's transaction, still count the open cases
    of each engineer (no change lost to another, no deadlock between them)."""
    amy = svc.actor("acme", "amy")

    def desk(_: int) -> None:
        for i in range(8):
            case = svc.open_case("acme", "field-service", amy, {"mode": "workload"}).case
            if i % 2:
                engineer = assigned_to(case).removeprefix("person:")
                svc.act("acme", case.id, "finish", svc.actor("acme", engineer), {}, 1)

    at_once(6, desk)
    kept, counted = queue_loads(svc.db)
    assert kept == counted
    assert {ref: n for (_, kind, ref), n in kept.items() if kind == "person"} == {
        e: n for e, n in open_loads(svc).items() if n
    }
    assert sum(open_loads(svc).values()) == 24
