"""Building a running kefu: database, catalog, service — shared by the CLI, the API and tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.cases.service import CaseService
from core.rules.evaluator import Evaluator
from core.runtime.users import ensure_user, new_password, set_membership
from core.spec.catalog import Catalog, load_catalog
from core.storage.db import Database
from core.storage.migrate import upgrade


def build_service(
    db: Database,
    catalog: Catalog | None = None,
    *,
    evaluator: Evaluator | str | None = None,
    clock: Any = None,
    migrate: bool = True,
) -> CaseService:
    catalog = catalog or load_catalog()
    if migrate:
        upgrade(db)
    if evaluator is None:
        kinds = {c.company.rules_engine for c in catalog.companies.values()} - {None}
        evaluator = kinds.pop() if len(kinds) == 1 else None
    svc = CaseService(db, catalog, evaluator=evaluator, clock=clock)
    svc.sync()
    return svc


def create_config_people(
    svc: CaseService, *, passwords: bool = True
) -> dict[tuple[str, str], str | None]:
    """Create every person named in the company configs as a user with their departments.

    Returns ``{(company, username): password}`` for users that got a new password.
    """
    out: dict[tuple[str, str], str | None] = {}
    now = svc.clock.now()
    with svc.db.write() as conn:
        for key, rt in svc.companies.items():
            for username, person in rt.definition.people.items():
                password = new_password() if passwords else None
                uid = ensure_user(
                    conn, username, person.name, now, email=person.email, password=password
                )
                set_membership(conn, uid, rt.id, person.departments, person.roles)
                out[(key, username)] = password
    return out


def default_paths() -> tuple[Path, Path]:
    from core.spec.catalog import ROOT

    return ROOT / "rules", ROOT / "config"
