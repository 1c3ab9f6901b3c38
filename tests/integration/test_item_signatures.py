"""A signature covering one field of a list's items (``covers: [actions.owner]``): the
approved plan of ZYQP017 d) (rules/iatf-customer-service) stays signed while its owners
tick the actions off, and is voided when what, who or when changes — on SQLite and
PostgreSQL, with the demo company."""

from __future__ import annotations

from typing import Any

from core.cases import records
from core.cases.service import CaseService

P = "iatf-customer-service"


def act(svc: CaseService, cid: int, action: str, who: str, fields: dict[str, Any]) -> None:
    version = svc.get_case("demo", cid).version
    svc.act("demo", cid, action, svc.actor("demo", who), fields, version)


def approved_plan(svc: CaseService) -> int:
    """A major issue walked to D6 with its actions reviewed and approved."""
    wang = svc.actor("demo", "wang")
    cid = svc.open_case(
        "demo",
        P,
        wang,
        {"customer_name": "华东汽车", "channel": "phone", "service_phase": "after_sale"}
        | {"info_kind": "quality", "description": "停线"},
    ).case.id
    act(svc, cid, "register", "wang", {"customer_type": "oem", "file_checked": True})
    act(
        svc,
        cid,
        "classify",
        "qian",
        {"found_at": "line", "found_on": "2026-11-02"} | {"line_stop": True, "batch_issue": False},
    )
    minutes = {"emergency_plan": "全检", "possible_causes": "模具", "traceability": "两批"}
    act(svc, cid, "record_minutes", "sun", minutes)
    for who in ("sun", "zhou", "wu", "zheng"):
        act(svc, cid, "sign_minutes", who, {})
    act(
        svc,
        cid,
        "receive_samples",
        "wang",
        {"samples_received_on": "2026-11-02T15:00+08:00", "sample_qty": 2},
    )
    act(svc, cid, "form_team", "sun", {"team_members": {"member": "he", "function": "质量"}})
    act(svc, cid, "describe", "wu", {"problem_statement": "停线"})
    act(
        svc,
        cid,
        "plan_containment",
        "sun",
        {"containment": {"what": "全检", "owner": "he", "due_on": "2026-11-03"}},
    )
    act(svc, cid, "containment_progress", "he", {"containment": {"id": 1, "done": True}})
    act(svc, cid, "containment_done", "sun", {})
    causes = [
        {"cause": "模具磨损", "kind": "occurrence", "owner": "he"},
        {"cause": "检测漏检", "kind": "escape", "owner": "he"},
    ]
    act(svc, cid, "root_cause_found", "wu", {"root_causes": causes})
    plan = {
        "corrective_actions": [
            {"what": "更换模具", "owner": "zheng", "due_on": "2026-11-06"},
            {"what": "调整检测压力", "owner": "ma", "due_on": "2026-11-06"},
        ],
        "preventive_actions": {"what": "更新控制计划", "owner": "ma", "due_on": "2026-11-20"},
    }
    act(svc, cid, "submit_actions", "sun", plan)
    act(svc, cid, "approve_review", "zhou", {})
    act(svc, cid, "approve_actions", "feng", {"approval_comment": "批准"})
    return cid


def not_effective(svc: CaseService, cid: int) -> None:
    """D6: every action done, and the verification finds them not effective (back to D4)."""
    act(svc, cid, "implemented", "sun", {})
    failed = {"verification_method": "跟踪", "verification_result": "仍渗漏", "effective": False}
    act(svc, cid, "verify", "wu", failed)


def valid(svc: CaseService, cid: int) -> set[str]:
    return {s["name"] for s in svc.signatures("demo", cid) if s["void_at"] is None}


def test_ticking_actions_off_keeps_the_approval_and_changing_an_owner_voids_it(
    svc: CaseService,
) -> None:
    cid = approved_plan(svc)
    assert valid(svc, cid) == {"emergency_meeting", "action_review", "action_approval"}
    act(svc, cid, "action_progress", "zheng", {"corrective_actions": {"id": 1, "done": True}})
    act(
        svc,
        cid,
        "action_progress",
        "ma",
        {"corrective_actions": {"id": 2, "done": True, "evidence": "MSA报告"}},
    )
    assert valid(svc, cid) == {"emergency_meeting", "action_review", "action_approval"}
    assert "signature_void" not in [e["kind"] for e in svc.journal("demo", cid)]

    # the verification fails; a new owner for action 2 is a new plan: both signatures go
    not_effective(svc, cid)
    act(svc, cid, "root_cause_found", "wu", {"root_causes": {"id": 1, "verified": True}})
    act(svc, cid, "submit_actions", "sun", {"corrective_actions": {"id": 2, "owner": "he"}})
    assert valid(svc, cid) == {"emergency_meeting"}
    voids = [e["data"] for e in svc.journal("demo", cid) if e["kind"] == "signature_void"]
    assert {v["signature"] for v in voids} == {"action_review", "action_approval"}
    # the root causes (covered whole) changed first: that voided both
    assert [v["changed"] for v in voids] == [["root_causes"], ["root_causes"]]
    doc = records.assemble(svc, "demo", cid, "capa_record")
    void = [s for s in doc.signatures if s["void"]]
    assert {s["label"] for s in void} == {"研发总监审核", "总经理批准"}
    assert all("D4 根本原因" in s["void_reason"] for s in void)


def test_an_owner_change_is_named_by_the_item_field(svc: CaseService) -> None:
    cid = approved_plan(svc)
    # D6 → not effective → D4 without changing the causes → D5: only the owner changes
    act(svc, cid, "action_progress", "zheng", {"corrective_actions": {"id": 1, "done": True}})
    act(svc, cid, "action_progress", "ma", {"corrective_actions": {"id": 2, "done": True}})
    not_effective(svc, cid)
    act(svc, cid, "root_cause_found", "wu", {})
    assert valid(svc, cid) == {"emergency_meeting", "action_review", "action_approval"}
    act(svc, cid, "submit_actions", "sun", {"corrective_actions": {"id": 2, "owner": "he"}})
    voids = [e["data"] for e in svc.journal("demo", cid) if e["kind"] == "signature_void"]
    assert [v["changed"] for v in voids] == [["corrective_actions.owner"]] * 2
    doc = records.assemble(svc, "demo", cid, "capa_record")
    reasons = {s["void_reason"] for s in doc.signatures if s["void"]}
    assert reasons == {"签字后修改: D5 纠正措施 · 责任人"}, reasons
