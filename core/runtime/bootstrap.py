"""Building a running kefu: database, catalog, service — shared by the CLI, the API and tests."""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from core.cases.service import CaseService
from core.rules.evaluator import Evaluator
from core.runtime.plugins import installed
from core.runtime.users import ensure_user, new_password, set_membership
from core.spec.catalog import Catalog, load_catalog
from core.spec.definitions import PersonDef
from core.storage import schema as t
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
    """The case service on ``db``, its companies and procedure versions registered.

    ``evaluator``: an engine kind (``reference``, ``durable``) as the server default, or a
    running evaluator every company then uses; by default each company runs the engine
    its config names (``rules_engine:``) and the others the platform default.
    """
    catalog = catalog or load_catalog(extensions=installed())
    if migrate:
        upgrade(db)
    svc = CaseService(db, catalog, evaluator=evaluator, clock=clock)
    svc.sync()
    if migrate:  # a server starting: statistics for the planner (tests skip it)
        db.optimize()
    return svc


@dataclass
class ConfigUser:
    """A person named in the company configs, as a user.

    ``companies``: the keys of the companies whose config names them (one membership
    each). ``password``: the password this call set, printed once; ``None`` when the user
    already had one (it is never changed here: ``kefu user password`` resets it).
    """

    username: str
    companies: list[str]
    created: bool
    password: str | None = None


def freeze_startup_heap() -> None:
    """Leave what start-up built (catalogue, compiled procedures, statements, the app:
    some 180,000 objects) out of the garbage collector's full collections, once, in a
    long-running process (``kefu serve`` and its server processes, ``kefu worker``).

    Python's oldest-generation collection walks every tracked object, and one came about
    every 25 case lists: "my cases" took 15 ms, and 110–140 ms on those calls (measured at
    a million cases, p50 16 ms against p95 123–165 ms); with the start-up heap frozen the
    same collections took 12 ms. Objects made later are collected as before."""
    gc.collect()
    gc.freeze()


def create_config_people(svc: CaseService, *, passwords: bool = True) -> dict[str, ConfigUser]:
    """Make every person named in the company configs a user, with their departments and
    roles in each company that names them.

    A person becomes a user once: a user who exists keeps their password, so running this
    again (``kefu init --demo`` at every ``make run``) changes no login. With
    ``passwords``, a new user, or one without a password, gets one random password,
    the same for every company they belong to. Returns ``{username: ConfigUser}``.
    """
    named: dict[str, list[tuple[str, int, PersonDef]]] = {}
    for key, rt in sorted(svc.companies.items()):
        for username, person in rt.definition.people.items():
            named.setdefault(username, []).append((key, rt.id, person))
    out: dict[str, ConfigUser] = {}
    now = svc.clock.now()
    u = t.app_user
    with svc.db.write() as conn:
        for username in sorted(named):
            entries = named[username]
            row = conn.execute(select(u.c.password_hash).where(u.c.username == username)).first()
            password = None
            if passwords and (row is None or row.password_hash is None):
                password = new_password()
            first = entries[0][2]
            uid = ensure_user(conn, username, first.name, now, email=first.email, password=password)
            for _, company_id, person in entries:
                set_membership(conn, uid, company_id, person.departments, person.roles)
            out[username] = ConfigUser(username, [k for k, _, _ in entries], row is None, password)
    return out
