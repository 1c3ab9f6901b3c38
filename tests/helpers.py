"""Helpers for storage tests: a service on a given database with the demo people as users."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.cases.service import CaseService
from core.clock import TestClock
from core.runtime.bootstrap import build_service, create_config_people
from core.runtime.plugins import installed
from core.spec.catalog import ROOT, load_catalog
from core.storage.db import Database

FIXTURES = Path(__file__).resolve().parent / "fixtures"

OPEN_FIELDS = {
    "channel": "phone",
    "customer_name": "张三",
    "phone": "13912345678",
    "symptom": "空调不制冷",
}
VERIFY = {
    "contact_verified": True,
    "in_scope": True,
    "onsite_needed": True,
    "category": "electrical",
    "urgency": "medium",
}
DISPATCH = {
    "engineer": "li",
    "engineer_contact": "13800000001",
    "visit_at": "2026-11-23T10:00+08:00",
}


def service(
    db: Database,
    *,
    config: Path | None = None,
    rules: Path | None = None,
    evaluator: Any = "reference",
    clock: Any = None,
) -> CaseService:
    cat = load_catalog(rules or ROOT / "rules", config or ROOT / "config", extensions=installed())
    assert not cat.diagnostics.errors, [d.format() for d in cat.diagnostics]
    svc = build_service(db, cat, evaluator=evaluator, clock=clock or TestClock(), migrate=False)
    create_config_people(svc, passwords=False)
    return svc


def case_at_repair(svc: CaseService, company: str = "demo") -> int:
    """Open a repair-desk case and walk it to the engineer's step; returns its id (version 3)."""
    wang = svc.actor(company, "wang")
    cid = svc.open_case(company, "repair-desk", wang, OPEN_FIELDS).case.id
    svc.act(company, cid, "verify", wang, VERIFY, 1)
    svc.act(company, cid, "dispatch", wang, DISPATCH, 2)
    return cid
