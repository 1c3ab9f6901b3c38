"""A crash or hang of durable_rules during an action: a clean 503, nothing half-written.

The service runs the isolated durable engine with its test faults enabled; a fault armed
with ``_force_crash`` / ``_force_hang`` fires inside the engine's child process during the
next evaluation — here, the rules of an action. The action must fail with
EngineUnavailable and leave the case, its journal, the outbox and the hash chain exactly
as they were; the next action starts a fresh engine and goes through. Both databases.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from core.cases.service import CaseService
from core.errors import EngineUnavailable
from core.rules.isolation import IsolatedDurableEvaluator
from core.storage import schema as t
from core.storage.db import Database
from tests import requires
from tests.helpers import case_at_repair, service


@pytest.fixture(autouse=True)
def _needs_durable() -> None:
    requires.durable()


DONE = {"hours_spent": 2, "result": "更换压缩机电容", "resolved": True}
DIAGNOSED = {"diagnosis": "压缩机电容老化", "warranty": "in_warranty", "estimated_hours": 2}


@pytest.fixture
def engine() -> Iterator[IsolatedDurableEvaluator]:
    ev = IsolatedDurableEvaluator(timeout=1.0, allow_test_faults=True)
    yield ev
    ev.close()


def state(svc: CaseService, db: Database, case_id: int) -> dict[str, Any]:
    """Everything an action could write."""
    view = svc.get_case("demo", case_id)
    with db.read() as conn:
        journal = conn.execute(select(func.count()).select_from(t.journal)).scalar()
        head = conn.execute(select(t.journal_head.c.seq, t.journal_head.c.hash)).all()
        outbox = conn.execute(select(func.count()).select_from(t.outbox)).scalar()
        assignees = conn.execute(
            select(t.case_assignee.c.kind, t.case_assignee.c.ref).where(
                t.case_assignee.c.case_id == case_id
            )
        ).all()
    return {
        "version": view.version,
        "step": view.step,
        "fields": view.fields,
        "assignees": view.assignees,
        "updated_at": view.updated_at,
        "journal": journal,
        "head": head,
        "outbox": outbox,
        "assignee_rows": sorted(assignees),
    }


@pytest.mark.parametrize("how", ["engine", "segv", "abort"])
def test_a_crash_during_an_action_writes_nothing_and_the_next_action_works(
    db: Database, engine: IsolatedDurableEvaluator, how: str
) -> None:
    svc = service(db, evaluator=engine)
    li = svc.actor("demo", "li")
    case_id = case_at_repair(svc)  # version 3: the engine has run, its child knows the rules
    before = state(svc, db, case_id)
    child = engine.pid
    assert child is not None
    engine._force_crash(how)
    with pytest.raises(EngineUnavailable) as info:
        svc.act("demo", case_id, "complete", li, DONE, 3)
    assert info.value.status == 503
    assert state(svc, db, case_id) == before
    res = svc.act("demo", case_id, "complete", li, DONE, 3)  # the same request, retried
    assert (res.case.step, res.case.version) == ("card", 4)  # under warranty: card next
    assert engine.pid not in (None, child)  # a fresh engine process
    assert svc.verify_journal() == []


def test_a_hang_during_an_action_times_out_writes_nothing_and_the_next_action_works(
    db: Database, engine: IsolatedDurableEvaluator
) -> None:
    svc = service(db, evaluator=engine)
    li = svc.actor("demo", "li")
    case_id = case_at_repair(svc)
    # the diagnosis takes a branch: the child has compiled the pack's form conditions too,
    # so the next call gets the evaluation timeout (1 s), not the first compile's
    svc.act("demo", case_id, "diagnose", li, DIAGNOSED, 3)
    before = state(svc, db, case_id)
    engine._force_hang("sleep")
    started = time.monotonic()
    with pytest.raises(EngineUnavailable, match="did not answer within 1 s"):
        svc.act("demo", case_id, "complete", li, DONE, 4)
    assert time.monotonic() - started < 3.0
    assert state(svc, db, case_id) == before
    res = svc.act("demo", case_id, "complete", li, DONE, 4)
    assert (res.case.step, res.case.version) == ("card", 5)  # under warranty: card next
    assert [m["template"] for m in svc.outbox("demo", case_id)] == ["repair.engineer-assigned"]
    assert svc.verify_journal() == []


def test_a_crash_while_opening_a_case_leaves_no_case_and_no_number_used(
    db: Database, engine: IsolatedDurableEvaluator
) -> None:
    from tests.helpers import OPEN_FIELDS

    svc = service(db, evaluator=engine)
    wang = svc.actor("demo", "wang")
    first = svc.open_case("demo", "repair-desk", wang, OPEN_FIELDS).case.number
    engine._force_crash("segv")
    with pytest.raises(EngineUnavailable):
        svc.open_case("demo", "repair-desk", wang, OPEN_FIELDS)
    with db.read() as conn:
        assert conn.execute(select(func.count()).select_from(t.case)).scalar() == 1
    second = svc.open_case("demo", "repair-desk", wang, OPEN_FIELDS).case.number
    assert (first[-4:], second[-4:]) == ("0001", "0002")  # the crashed opening used no number
    assert svc.verify_journal() == []
