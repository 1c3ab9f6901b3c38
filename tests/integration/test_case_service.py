"""The case service on real databases (each test runs on SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from core.cases.service import ActionUnavailable
from core.clock import TestClock
from core.errors import Conflict, EngineUnavailable, InvalidInput, NotAllowed, NotFound, Refused
from core.rules.analysed import AnalysedDurableEvaluator
from core.rules.ir import RuleSet
from core.rules.reference import ReferenceEvaluator
from core.runtime.plugins import installed
from core.spec.catalog import ROOT, load_catalog
from core.storage import schema as t
from tests.helpers import (
    DISPATCH,
    FIXTURES,
    OPEN_FIELDS,
    VERIFY,
    at_once,
    case_at_repair,
    hand_in_card,
    service,
)


def counts(db, case_id: int) -> tuple[int, int, int]:
    with db.read() as conn:
        version = conn.execute(select(t.case.c.version).where(t.case.c.id == case_id)).scalar()
        journal = conn.execute(select(func.count()).select_from(t.journal)).scalar()
        outbox = conn.execute(select(func.count()).select_from(t.outbox)).scalar()
    return version, journal, outbox


def test_walk_to_closed_with_journal_and_outbox(db):
    svc = service(db)
    wang, li = svc.actor("demo", "wang"), svc.actor("demo", "li")
    cid = case_at_repair(svc)
    assert svc.get_case("demo", cid).assignees == ["person:li"]
    svc.act(
        "demo",
        cid,
        "complete",
        li,
        {"hours_spent": 2, "result": "更换压缩机电容", "resolved": True},
        3,
    )
    assert hand_in_card(svc, cid, 4) == 6  # under warranty: the card comes back first
    svc.act("demo", cid, "confirm", wang, {"customer_confirmed": True}, 6)
    svc.act("demo", cid, "record_survey", wang, {"survey_channel": "phone", "satisfaction": 5}, 7)
    res = svc.act("demo", cid, "close", wang, {"care_note": "客户表示满意"}, 8)
    assert (res.case.status, res.case.step, res.case.assignees) == ("closed", "closed", [])
    assert res.case.closed_at is not None
    kinds = [(e["kind"], e["action"], e["rule_id"]) for e in svc.journal("demo", cid)]
    assert ("notified", "dispatch", "engineer-assigned") in kinds
    assert ("closed", None, None) in kinds
    templates = [m["template"] for m in svc.outbox("demo", cid)]
    assert templates == ["repair.engineer-assigned", "repair.closed"]
    rule_entry = next(e for e in svc.journal("demo", cid) if e["rule_id"] == "engineer-assigned")
    assert rule_entry["facts"]["engineer"] == "li" and rule_entry["procedure_version"] == 1
    assert svc.verify_journal() == []


def test_refusal_and_engine_failure_write_nothing(db):
    svc = service(db)
    li = svc.actor("demo", "li")
    cid = case_at_repair(svc)
    before = counts(db, cid)
    with pytest.raises(Refused) as exc:
        svc.act("demo", cid, "complete", li, {"hours_spent": 0, "result": "x", "resolved": True}, 3)
    assert exc.value.details["rule"] == "hours-must-be-recorded"
    assert counts(db, cid) == before

    class Crashing(ReferenceEvaluator):
        def evaluate(self, ruleset: RuleSet, facts: Mapping) -> frozenset[str]:
            raise EngineUnavailable("engine crashed")

    svc.use_evaluator(Crashing())
    with pytest.raises(EngineUnavailable):
        svc.act(
            "demo", cid, "complete", li, {"hours_spent": 1, "result": "ok", "resolved": True}, 3
        )
    assert counts(db, cid) == before
    svc.use_evaluator(ReferenceEvaluator())
    assert (
        svc.act(
            "demo", cid, "complete", li, {"hours_spent": 1, "result": "ok", "resolved": True}, 3
        ).case.step
        == "card"
    )


def test_permissions_forms_and_stale_versions(db):
    svc = service(db)
    wang, li = svc.actor("demo", "wang"), svc.actor("demo", "li")
    with pytest.raises(NotAllowed):
        svc.open_case("demo", "repair-desk", li, OPEN_FIELDS)  # engineers do not take calls
    with pytest.raises(InvalidInput) as bad:
        svc.open_case(
            "demo", "repair-desk", wang, {**OPEN_FIELDS, "phone": "call me", "colour": "red"}
        )
    assert bad.value.details["errors"] == {
        "phone": "not a valid phone number",
        "colour": "unknown field",
    }
    cid = svc.open_case("demo", "repair-desk", wang, OPEN_FIELDS).case.id
    with pytest.raises(NotAllowed):
        svc.act("demo", cid, "verify", li, VERIFY, 1)
    with pytest.raises(InvalidInput) as missing:
        svc.act("demo", cid, "verify", wang, {"in_scope": True}, 1)
    assert missing.value.details["errors"]["category"] == "required"
    with pytest.raises(ActionUnavailable):
        svc.act("demo", cid, "dispatch", wang, DISPATCH, 1)
    svc.act("demo", cid, "verify", wang, VERIFY, 1)
    with pytest.raises(Conflict) as stale:
        svc.act("demo", cid, "dispatch", wang, DISPATCH, 1)
    assert stale.value.details["current_version"] == 2
    assert [a.name for a in svc.available_actions("demo", cid, wang)] == ["dispatch"]
    assert svc.available_actions("demo", cid, li) == []
    # someone who may not take the action learns nothing of the case: not its version
    # (a stale one), not its step (an action of another step) — only that they may not
    for action, version in (("dispatch", 1), ("verify", 7), ("cancel", 2)):
        with pytest.raises(NotAllowed) as refused:
            svc.act("demo", cid, action, li, {}, version)
        assert "current_version" not in refused.value.details
        assert "step" not in refused.value.details


def test_companies_never_see_each_other(db):
    svc = service(db, config=FIXTURES / "config-two")
    demo_case = case_at_repair(svc, "demo")
    acme_wang = svc.actor("acme", "wang")  # the same person, acting in the other company
    for call in (
        lambda: svc.get_case("acme", demo_case),
        lambda: svc.journal("acme", demo_case),
        lambda: svc.available_actions("acme", demo_case, acme_wang),
        lambda: svc.act("acme", demo_case, "complete", acme_wang, {}, 3),
    ):
        with pytest.raises(NotFound):
            call()
    with pytest.raises(NotAllowed):
        svc.actor("acme", "li")  # li works for demo only
    acme_case = svc.open_case("acme", "repair-desk", acme_wang, OPEN_FIELDS).case
    assert acme_case.number.startswith("AC") and acme_case.number.endswith("001")
    assert svc.outbox("acme") == [] and svc.outbox("demo")


def test_case_numbers_have_no_gaps_and_restart_each_month(db):
    clock = TestClock(dt.datetime(2026, 11, 30, 15, 0, tzinfo=dt.UTC))  # 23:00 in Shanghai
    svc = service(db, clock=clock)
    wang = svc.actor("demo", "wang")
    numbers = [
        svc.open_case("demo", "repair-desk", wang, OPEN_FIELDS).case.number for _ in range(3)
    ]
    clock.advance(dt.timedelta(hours=2))  # now 1 December in Shanghai
    numbers.append(svc.open_case("demo", "repair-desk", wang, OPEN_FIELDS).case.number)
    assert numbers == ["BX-202611-0001", "BX-202611-0002", "BX-202611-0003", "BX-202612-0001"]


def test_running_cases_keep_their_procedure_version(db, tmp_path: Path):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    svc = service(db, rules=rules)
    li = svc.actor("demo", "li")
    old = case_at_repair(svc)
    pack = rules / "repair-desk" / "procedure.yaml"
    pack.write_text(
        pack.read_text(encoding="utf-8").replace(
            "请记录实际维修耗时(大于0小时)", "维修耗时必须大于0"
        ),
        encoding="utf-8",
    )
    svc2 = service(db, rules=rules)  # a restart after the pack changed
    assert svc2.companies["demo"].procedures["repair-desk"].version == 2
    new = case_at_repair(svc2)
    assert svc2.get_case("demo", old).procedure_version == 1
    assert svc2.get_case("demo", new).procedure_version == 2
    bad = {"hours_spent": 0, "result": "x", "resolved": True}
    with pytest.raises(Refused, match="请记录实际维修耗时"):
        svc2.act("demo", old, "complete", li, bad, 3)
    with pytest.raises(Refused, match="维修耗时必须大于0"):
        svc2.act("demo", new, "complete", li, bad, 3)
    # loading the same pack again creates no new version
    assert service(db, rules=rules).companies["demo"].procedures["repair-desk"].version == 2


def test_audit_verify_names_the_first_changed_entry(db):
    svc = service(db)
    cid = case_at_repair(svc)
    assert svc.verify_journal() == []
    entries = svc.journal("demo", cid)
    victim = entries[2]["seq"]
    with db.write() as conn:
        conn.execute(
            update(t.journal)
            .where(t.journal.c.seq == victim)
            .values(data={"fields": {"engineer": "someone-else"}})
        )
    problems = svc.verify_journal()
    assert problems and problems[0][0] == "demo" and problems[0][1] == victim
    assert "changed" in problems[0][2]


def test_audit_verify_detects_deleted_tail(db):
    svc = service(db)
    case_at_repair(svc)
    with db.write() as conn:
        last = conn.execute(select(func.max(t.journal.c.seq))).scalar()
        conn.execute(text("DELETE FROM journal WHERE seq = :s"), {"s": last})
    problems = svc.verify_journal()
    assert problems and "deleted" in problems[0][2]


ROUNDS, CLIENTS = 100, 20


@pytest.mark.slow  # 2,000 concurrent actions
def test_concurrent_actors_exactly_one_wins_each_round(db):
    """20 clients act on the same case version at once, 100 rounds: one winner per round."""
    svc = service(db)
    li = svc.actor("demo", "li")
    cid = case_at_repair(svc)
    with db.read() as conn:
        journal_before = conn.execute(select(func.count()).select_from(t.journal)).scalar()
    wins = conflicts = 0
    lock = threading.Lock()
    for rnd in range(ROUNDS):
        version = 3 + rnd
        results: list[str] = []

        def client(i: int, version: int = version, results: list[str] = results) -> None:
            try:
                svc.act(
                    "demo",
                    cid,
                    "reschedule",
                    li,
                    {"visit_at": f"2026-12-{1 + i:02d}T09:00+08:00"},
                    version,
                )
                outcome = "win"
            except Conflict:
                outcome = "conflict"
            with lock:
                results.append(outcome)

        at_once(CLIENTS, client)
        assert results.count("win") == 1, f"round {rnd}: {results}"
        wins += results.count("win")
        conflicts += results.count("conflict")
    assert (wins, conflicts) == (ROUNDS, ROUNDS * (CLIENTS - 1))
    case = svc.get_case("demo", cid)
    assert case.version == 3 + ROUNDS
    with db.read() as conn:
        journal_after = conn.execute(select(func.count()).select_from(t.journal)).scalar()
    # each successful reschedule writes: the action, the (unchanged) assignment is not
    # journaled, one notify entry from rule engineer-assigned
    actions = [
        e for e in svc.journal("demo", cid) if e["kind"] == "action" and e["action"] == "reschedule"
    ]
    assert len(actions) == wins
    assert journal_after - journal_before == 2 * wins
    assert svc.verify_journal() == []


def test_build_service_loads_all_packs():
    cat = load_catalog(extensions=installed())
    assert "repair-desk" in cat.packs and "demo" in cat.companies
    assert not cat.diagnostics.errors


def test_each_company_runs_the_rules_engine_its_config_names(db):
    """``rules_engine:`` is per company: two companies naming different engines each get
    theirs, and one naming none gets the server's default — no silent fallback."""

    svc = service(db, evaluator=None)
    try:
        rt = svc.company("demo")
        ref = dataclasses.replace(
            rt, definition=rt.definition.model_copy(update={"rules_engine": "reference"})
        )
        dur = dataclasses.replace(
            rt, definition=rt.definition.model_copy(update={"rules_engine": "durable"})
        )
        assert isinstance(svc.evaluator_for(ref), ReferenceEvaluator)
        assert isinstance(svc.evaluator_for(dur), AnalysedDurableEvaluator)
        assert svc.evaluator_for(ref) is svc.evaluator_for(ref)  # one per kind, reused
    finally:
        svc.close()
