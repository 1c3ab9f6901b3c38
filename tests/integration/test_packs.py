"""The test packs in tests/packs/: constructs of the engine shown through scenarios.

Each pack there exists to exercise one behaviour of the engine (not a company's
procedure); every scenario of every such pack runs on both rule engines and on SQLite and
PostgreSQL. The scenarios of the bundled packs (rules/) run here on PostgreSQL; both
engines run them on SQLite in test_scenarios_differential.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.spec.catalog import ROOT
from core.storage import schema as t
from core.storage.db import Database
from core.testing.scenarios import ScenarioError, run_scenario, scenario_files
from tests import pg, requires

PACKS = Path(__file__).resolve().parents[1] / "packs"
SCENARIOS = sorted(PACKS.glob("*/scenarios/*.yaml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_pack_scenario(path: Path, db: Database, evaluator_kind: str) -> None:
    if evaluator_kind == "durable":
        requires.durable()
    try:
        run_scenario(path, evaluator_kind=evaluator_kind, db=db)
    except ScenarioError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.mark.pg
@pytest.mark.parametrize(
    "path", scenario_files([ROOT / "rules"]), ids=lambda p: f"{p.parent.parent.name}/{p.stem}"
)
def test_bundled_pack_scenario_on_postgresql(path: Path, pg_url: str) -> None:
    """The companies' procedures (rules/) hold on PostgreSQL too; on SQLite, both engines
    run them step by step in test_scenarios_differential."""
    db = Database(pg_url)
    try:
        pg.empty(db)
        run_scenario(path, evaluator_kind="reference", db=db)
    except ScenarioError as exc:
        pytest.fail(str(exc), pytrace=False)
    finally:
        db.dispose()


def test_every_way_of_closing_leaves_the_same_trace(db: Database) -> None:
    """Staff action, opening rule and timer: each closed case has a `closed` entry as its
    last, nobody assigned, no pending timer and no next due time."""
    from sqlalchemy import select

    for name in ("staff-closes", "opened-into-final", "timer-into-final"):
        run_scenario(PACKS / "final-step" / "scenarios" / f"{name}.yaml", db=db)
    with db.read() as conn:
        cases = conn.execute(select(t.case).order_by(t.case.c.id)).all()
        assert [c.status for c in cases] == ["closed"] * 3
        for c in cases:
            kinds = [
                r.kind
                for r in conn.execute(
                    select(t.journal.c.kind)
                    .where(t.journal.c.case_id == c.id)
                    .order_by(t.journal.c.seq)
                )
            ]
            assert kinds[-1] == "closed" and kinds.count("closed") == 1, (c.number, kinds)
            assert c.assignees == [] and c.next_due_at is None and c.closed_at is not None
            assignee_rows = conn.execute(
                select(t.case_assignee).where(t.case_assignee.c.case_id == c.id)
            ).all()
            assert assignee_rows == []
            pending = conn.execute(
                select(t.timer.c.kind).where(
                    t.timer.c.case_id == c.id, t.timer.c.status == "pending"
                )
            ).all()
            assert pending == [], (c.number, pending)
