"""Helpers for storage tests: a service on a given database with the demo people as users."""

from __future__ import annotations

import copy
import dataclasses
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from core.cases.service import CaseService
from core.clock import TestClock
from core.runtime.bootstrap import build_service, create_config_people
from core.runtime.plugins import installed
from core.spec.catalog import ROOT, Catalog, load_catalog
from core.spec.extensions import Extensions
from core.storage import schema as t
from core.storage.db import Database

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PASSWORD = "correct horse 1"  # of the users tests sign in as
#: a one-pixel PNG (an upload every attachment field of images takes)
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)

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
    "warranty": "in_warranty",  # 三包: free, and the warranty card goes back to the office
}
#: the warranty card li hands in after a repair under warranty (seed 002 W9)
CARD = {"card_number": "SB-0001", "serial_number": "KFR35-0001", "warranty_service": "repair"}
DISPATCH = {
    "engineer": "li",
    "engineer_contact": "13800000001",
    "visit_at": "2026-11-23T10:00+08:00",
}


_CATALOGS: dict[tuple[Path, Path], tuple[Extensions, Catalog]] = {}


def catalog(
    rules: Path | None = None, config: Path | None = None, extensions: Extensions | None = None
) -> Catalog:
    """The packs of ``rules`` and the companies of ``config`` (default: this checkout's),
    loaded with ``extensions`` (default: the installed plugins).

    With the installed plugins, folders of the repository (rules/, config/,
    tests/fixtures/) are loaded once per test session, a quarter of a second each time
    saved; a folder elsewhere (a test's tmp_path, which it may change between two calls)
    is loaded at every call. Each caller gets its own copy of what a service or a test
    may change: the company definitions, and the compiled procedures (a service sets
    their version when it registers them).
    """
    rules, config = (rules or ROOT / "rules").resolve(), (config or ROOT / "config").resolve()
    shared = extensions is None or extensions is installed()
    extensions = extensions or installed()
    cached = _CATALOGS.get((rules, config))
    if shared and cached is not None and cached[0] is extensions:
        return _own_copy(cached[1])
    cat = load_catalog(rules, config, extensions=extensions)
    assert not cat.diagnostics.errors, [d.format() for d in cat.diagnostics]
    if shared and rules.is_relative_to(ROOT) and config.is_relative_to(ROOT):
        _CATALOGS[rules, config] = (extensions, cat)
        return _own_copy(cat)
    return cat


def _own_copy(cat: Catalog) -> Catalog:
    companies = {
        key: dataclasses.replace(
            lc,
            company=lc.company.model_copy(deep=True),
            procedures={k: copy.copy(proc) for k, proc in lc.procedures.items()},
        )
        for key, lc in cat.companies.items()
    }
    return dataclasses.replace(cat, companies=companies)


def service(
    db: Database,
    *,
    config: Path | None = None,
    rules: Path | None = None,
    evaluator: Any = "reference",
    clock: Any = None,
    extensions: Extensions | None = None,
) -> CaseService:
    """A service on ``db`` with the packs of ``rules`` and the companies of ``config``
    (:func:`catalog`), every person named in the configs a user without a password."""
    cat = catalog(rules, config, extensions)
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


def documents_rules(tmp: Path) -> Path:
    """A rules folder with the packs the documents tests use (the company of
    ``FIXTURES / "documents"`` enables them)."""
    rules = tmp / "rules"
    rules.mkdir(exist_ok=True)
    for pack in (
        ROOT / "rules" / "qp-complaint",
        ROOT / "rules" / "repair-desk",
        ROOT / "tests" / "packs" / "countersign",
        ROOT / "tests" / "packs" / "retention",
        ROOT / "tests" / "packs" / "handover-inspection",
        ROOT / "tests" / "packs" / "rectification",
    ):
        link = rules / pack.name
        if not link.exists():
            link.symlink_to(pack)
    return rules


def hand_in_card(svc: CaseService, case_id: int, version: int, company: str = "demo") -> int:
    """After a repair under warranty: li hands in the warranty card and zhao, the service
    administrator, enters it (seed 002 W9–W10), which brings the case to the callback
    (step ``confirm``). ``version`` is the case's version at step ``card``; returns the new one."""
    svc.act(company, case_id, "return_card", svc.actor(company, "li"), CARD, version)
    zhao = svc.actor(company, "zhao")
    return svc.act(company, case_id, "approve_card", zhao, {}, version + 1).case.version


def demo_with_channels(channels: str) -> str:
    """config/demo.yaml's text with its ``channels:`` section replaced by ``channels``
    (the section's entries, indented by two spaces)."""
    text = (ROOT / "config" / "demo.yaml").read_text(encoding="utf-8")
    own = re.compile(r"^channels:\n(?:  .*\n)+", re.M)
    assert own.search(text), "config/demo.yaml has no channels: section to replace"
    return own.sub("channels:\n" + channels.rstrip("\n") + "\n", text)


Loads = dict[tuple[int, str, str], int]


def queue_loads(db: Database) -> tuple[Loads, Loads]:
    """Each queue's load as kept (``assignee_load``, empty queues left out) and as counted
    from the inbox rows (``case_assignee``): the two must always be equal."""
    a = t.case_assignee
    with db.read() as conn:
        kept = {
            (r.company_id, r.kind, r.ref): r.open_cases
            for r in conn.execute(select(t.assignee_load))
            if r.open_cases
        }
        counted = {
            (r.company_id, r.kind, r.ref): r.n
            for r in conn.execute(
                select(a.c.company_id, a.c.kind, a.c.ref, func.count().label("n")).group_by(
                    a.c.company_id, a.c.kind, a.c.ref
                )
            )
        }
    return kept, counted


def at_once(threads: int, work: Callable[[int], None]) -> None:
    """Run ``work(0)`` … ``work(threads - 1)`` in threads started together (a barrier
    lets them go at once); the first exception a thread raised is raised here."""
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            start.wait()
            work(i)
        except BaseException as exc:  # raised again in the test's own thread, below
            errors.append(exc)

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    if errors:
        raise errors[0]
