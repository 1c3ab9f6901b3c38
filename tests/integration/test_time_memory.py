"""What a process remembers between changes of a case (``TimeMemory``) changes nothing.

The next change of a case skips reading its journal and rewrites only the timers whose
plan moved, when this process wrote the version it reads. Every bundled scenario (timers
fired by the clock on the way included) is run twice on SQLite — once as the service
runs, once with nothing remembered, so that every change replays the journal and
reschedules every timer — and must leave the same timers, journal and cases. Each run
also checks the queue loads the pipeline keeps (``assignee_load``) against a count of the
inbox rows: every scenario's assigning, reassigning, closing and reopening moves them.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.cases import deadlines
from core.runtime.bootstrap import build_service, create_config_people
from core.runtime.plugins import installed
from core.spec.catalog import ROOT, load_catalog
from core.storage import schema as t
from core.storage.db import Database
from core.storage.migrate import upgrade
from core.testing.scenarios import load_scenario, run_scenario, scenario_files
from tests.helpers import OPEN_FIELDS, VERIFY, queue_loads

SCENARIOS = scenario_files([ROOT / "rules", ROOT / "tests" / "packs"])


def _left(db: Database) -> dict[str, Any]:
    """The timers, journal and cases a run left (ids aside: what a user sees)."""
    with db.read() as conn:
        timers = sorted(
            (r.idempotency_key, r.kind, r.status, r.due_at, r.payload, r.fired_at, r.case_id)
            for r in conn.execute(select(t.timer))
        )
        # (a portal link's digest is of a random token: it differs between any two runs,
        # and so do the codes of the entries from there on)
        journal = [
            (r.seq, r.case_id, r.kind, r.action, r.rule_id, _no_digest(r.data), r.facts)
            for r in conn.execute(select(t.journal).order_by(t.journal.c.seq))
        ]
        cases = [
            (r.id, r.step, r.status, r.fields, r.assignees, r.version, r.next_due_at)
            for r in conn.execute(select(t.case).order_by(t.case.c.id))
        ]
    return {"timers": timers, "journal": journal, "cases": cases}


def _no_digest(data: Any) -> Any:
    return {k: v for k, v in data.items() if k != "digest"} if isinstance(data, dict) else data


def _run(path: Path, remember: bool, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    with monkeypatch.context() as m:
        if not remember:
            m.setattr(deadlines.TimeMemory, "get", lambda self, *args: None)
        with tempfile.TemporaryDirectory() as folder:
            db = Database(f"sqlite:///{folder}/kefu.db")
            upgrade(db)
            try:
                run_scenario(load_scenario(path), db=db, evaluator_kind="reference")
                kept, counted = queue_loads(db)
                assert kept == counted, "each queue's load must be its count of open cases"
                return _left(db)
            finally:
                db.dispose()


def test_there_are_scenarios_to_compare() -> None:
    assert len(SCENARIOS) >= 30, SCENARIOS


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_remembering_leaves_what_replaying_leaves(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remembered = _run(path, True, monkeypatch)
    replayed = _run(path, False, monkeypatch)
    assert remembered == replayed


def test_a_rolled_back_change_is_not_remembered(tmp_path: Path) -> None:
    """Only committed changes are remembered, and what is remembered is what the database
    holds: the next change at the same version must not find a refused change's plan."""
    db = Database(f"sqlite:///{tmp_path}/kefu.db")
    upgrade(db)
    svc = build_service(db, load_catalog(extensions=installed()), evaluator="reference")
    create_config_people(svc, passwords=False)
    wang = svc.actor("demo", "wang")
    opened = svc.open_case("demo", "repair-desk", wang, OPEN_FIELDS).case
    company = svc.company("demo").id
    assert svc.time_memory.get(company, opened.id, 1) is not None

    with pytest.raises(RuntimeError, match="disk is full"):
        with db.write() as conn:
            svc.pipeline(conn, svc.company("demo")).act(opened.id, "verify", wang, VERIFY, 1)
            raise RuntimeError("the disk is full")
    assert svc.time_memory.get(company, opened.id, 2) is None

    done = svc.act("demo", opened.id, "verify", wang, VERIFY, 1).case
    state = svc.time_memory.get(company, opened.id, done.version)
    assert state is not None
    assert sorted((key, due) for _, key, due, _ in state.timers) == _pending(db, opened.id)
    assert [e["kind"] for e in state.history] == _journal_kinds(db, opened.id)
    svc.close()


def _pending(db: Database, case_id: int) -> list[tuple[str, dt.datetime]]:
    with db.read() as conn:
        return sorted(
            (r.idempotency_key, r.due_at)
            for r in conn.execute(
                select(t.timer).where(t.timer.c.case_id == case_id, t.timer.c.status == "pending")
            )
        )


def _journal_kinds(db: Database, case_id: int) -> list[str]:
    with db.read() as conn:
        return [
            r.kind
            for r in conn.execute(
                select(t.journal.c.kind)
                .where(t.journal.c.case_id == case_id)
                .order_by(t.journal.c.seq)
            )
        ]


def test_the_memory_holds_a_bounded_number_of_cases_and_entries() -> None:
    """A process keeps at most ``size`` cases and ``entries`` journal entries in all, the
    least recently used going first; a case with a journal too long is not kept."""
    memory = deadlines.TimeMemory(size=3, entries=100)

    def state(version: int, entries: int) -> deadlines.TimeState:
        return deadlines.TimeState(version, [{"kind": "action"}] * entries, ())

    for case in (1, 2, 3):
        memory.put(7, case, state(1, 5))
    assert memory.get(7, 1, 1) is not None  # case 1 used: case 2 is now the oldest
    memory.put(7, 4, state(1, 5))
    assert memory.get(7, 2, 1) is None and memory.get(7, 1, 1) is not None
    assert memory.get(7, 1, 2) is None  # another version: not the case's state
    memory.put(7, 5, state(1, 11))  # longer than a tenth of all entries: never kept
    assert memory.get(7, 5, 1) is None
    big = deadlines.TimeMemory(size=100, entries=100)
    for case in range(12):
        big.put(7, case, state(1, 10))
    kept = [c for c in range(12) if big.get(7, c, 1) is not None]
    assert kept == list(range(2, 12))  # 100 entries: the two oldest cases went
