"""The case service: open a case, list what an actor may do, act — one transaction each.

``act(company, case_id, action, actor, data, expected_version)`` runs
permission → guard → form validation → transition → rules → effects, then writes the case
row, its assignees, journal entries (hash-chained per company), outbox rows and any
linked cases **in one database transaction**. A stale ``expected_version`` raises
:class:`~core.errors.Conflict`; a refusing rule raises :class:`~core.errors.Refused`; an
engine crash raises :class:`~core.errors.EngineUnavailable`. In each of those cases
nothing is written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update

from core.cases import deadlines, numbering, schedules
from core.cases.events import CaseEvent, EventQueue, emit, listening
from core.cases.numbering import NumberRequest
from core.clock import SystemClock
from core.errors import Conflict, InvalidInput, NotAllowed, NotFound, Refused
from core.rules.evaluator import Evaluator, make_evaluator
from core.spec.catalog import Catalog
from core.spec.definitions import CompanyDef, PackDef, ProcedureSettings
from core.spec.effects import Assignee, Change
from core.spec.loading import LoadedCompany, coerce_fields
from core.spec.procedures import CompiledProcedure, compile_procedure
from core.storage import schema as t
from core.storage.db import Database
from core.time.calendars import WorkingCalendar

GENESIS = "0" * 64
MAX_LINK_DEPTH = 3


# The hot path's statements are built once: building a statement per call cost more
# than executing it (bench/actions_bench.py).
_SEL_CASE = select(t.case).where(
    t.case.c.id == bindparam("cid"), t.case.c.company_id == bindparam("co")
)
_UPD_CASE = (
    update(t.case)
    .where(t.case.c.id == bindparam("cid"), t.case.c.version == bindparam("expected"))
    .values(
        fields=bindparam("fields"),
        step=bindparam("step"),
        status=bindparam("status"),
        assignees=bindparam("assignees"),
        version=bindparam("new_version"),
        updated_at=bindparam("now"),
        closed_at=bindparam("closed_at"),
    )
)
_SEL_HEAD = (
    select(t.journal_head.c.seq, t.journal_head.c.hash)
    .where(t.journal_head.c.company_id == bindparam("co"))
    .with_for_update()
)
_UPD_HEAD = (
    update(t.journal_head)
    .where(t.journal_head.c.company_id == bindparam("co"))
    .values(seq=bindparam("seq"), hash=bindparam("hash"))
)
_INS_JOURNAL = insert(t.journal)
_INS_OUTBOX = insert(t.outbox)
_DEL_ASSIGNEES = delete(t.case_assignee).where(t.case_assignee.c.case_id == bindparam("cid"))
_INS_ASSIGNEES = insert(t.case_assignee)


class ActionUnavailable(Conflict):
    """The action does not exist at the case's current step (or its guard is false)."""

    code = "action-unavailable"


@dataclass(frozen=True)
class Actor:
    """Who acts, in one company: their user name, departments and the roles they hold."""

    username: str
    company: str
    departments: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    system: bool = False


@dataclass
class CaseView:
    id: int
    company: str
    procedure: str
    procedure_version: int
    number: str
    status: str
    step: str
    fields: dict[str, Any]
    assignees: list[str]
    version: int
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    closed_at: dt.datetime | None
    next_due_at: dt.datetime | None = None  # the earliest running deadline


@dataclass
class ActionView:
    name: str
    label: dict[str, str | None]
    to: str | None
    ask: list[str]
    require: list[str]


@dataclass
class ActResult:
    case: CaseView
    fired: list[str]
    journal: list[int]
    linked: list[int] = field(default_factory=list)


@dataclass
class CompanyRuntime:
    id: int
    key: str
    definition: CompanyDef
    procedures: dict[str, CompiledProcedure]  # current version per procedure key
    version_ids: dict[str, int]  # procedure key -> procedure_version.id of the current version


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def entry_hash(prev: str, entry: Mapping[str, Any]) -> str:
    return hashlib.sha256((prev + _canonical(entry)).encode()).hexdigest()


def _hashed_part(
    company_id: int,
    seq: int,
    at: dt.datetime,
    actor: str,
    kind: str,
    case_id: int | None,
    action: str | None,
    rule_id: str | None,
    pversion: int | None,
    data: Any,
    facts: Any,
) -> dict[str, Any]:
    return {
        "company": company_id,
        "seq": seq,
        "at": at.astimezone(dt.UTC).isoformat(),
        "actor": actor,
        "kind": kind,
        "case": case_id,
        "action": action,
        "rule": rule_id,
        "pv": pversion,
        "data": data,
        "facts": facts,
    }


class CaseService:
    def __init__(
        self,
        db: Database,
        catalog: Catalog,
        *,
        evaluator: Evaluator | str | None = None,
        clock: Any = None,
    ) -> None:
        self.db = db
        self.catalog = catalog
        self.clock = clock or SystemClock()
        self._evaluator = evaluator if not isinstance(evaluator, str | None) else None
        self._evaluator_kind = evaluator if isinstance(evaluator, str) else None
        self.companies: dict[str, CompanyRuntime] = {}
        self._by_version_id: dict[int, tuple[CompiledProcedure, int]] = {}
        self._calendars: dict[str, WorkingCalendar] = {}
        self.events = EventQueue()

    @property
    def evaluator(self) -> Evaluator:
        """The rule evaluator, started on first use (the durable one is a child process)."""
        if self._evaluator is None:
            self._evaluator = make_evaluator(self._evaluator_kind)
        return self._evaluator

    def close(self) -> None:
        if self._evaluator is not None:
            self._evaluator.close()
        self.db.dispose()

    # -- start-up ----------------------------------------------------------------------
    def sync(self) -> None:
        """Register companies and procedure versions from the catalog (idempotent).

        A pack whose content or parameters changed gets a new version; running cases
        keep the version they started on.
        """
        with self.db.write() as conn:
            for key, lc in self.catalog.companies.items():
                self.companies[key] = self._sync_company(conn, lc)
            for rt in self.companies.values():  # each company schedule's next occurrence
                schedules.seed_company(self, conn, rt, self.clock.now())

    def _sync_company(self, conn: Connection, lc: LoadedCompany) -> CompanyRuntime:
        c = lc.company
        now = self.clock.now()
        row = conn.execute(select(t.company.c.id).where(t.company.c.key == c.company)).first()
        if row is None:
            company_id = conn.execute(
                insert(t.company).values(
                    key=c.company,
                    name=c.name.text(c.locale),
                    timezone=c.timezone,
                    locale=c.locale,
                    created_at=now,
                )
            ).inserted_primary_key[0]  # type: ignore[index]  # always set after an INSERT
            conn.execute(insert(t.journal_head).values(company_id=company_id, seq=0, hash=GENESIS))
        else:
            company_id = row.id
            conn.execute(
                update(t.company)
                .where(t.company.c.id == company_id)
                .values(name=c.name.text(c.locale), timezone=c.timezone, locale=c.locale)
            )
        version_ids: dict[str, int] = {}
        for pkey, proc in lc.procedures.items():
            pv = t.procedure_version
            existing = conn.execute(
                select(pv.c.id, pv.c.version).where(
                    pv.c.company_id == company_id,
                    pv.c.procedure == pkey,
                    pv.c.digest == proc.digest,
                )
            ).first()
            if existing is None:
                last = conn.execute(
                    select(func.max(pv.c.version)).where(
                        pv.c.company_id == company_id, pv.c.procedure == pkey
                    )
                ).scalar()
                version = (last or 0) + 1
                vid = conn.execute(
                    insert(pv).values(
                        company_id=company_id,
                        procedure=pkey,
                        version=version,
                        digest=proc.digest,
                        definition=proc.raw,
                        params=proc.params,
                        created_at=now,
                    )
                ).inserted_primary_key[0]  # type: ignore[index]  # always set after an INSERT
            else:
                vid, version = existing.id, existing.version
            proc.version = version
            version_ids[pkey] = vid
            self._by_version_id[vid] = (proc, company_id)
        return CompanyRuntime(company_id, c.company, c, dict(lc.procedures), version_ids)

    def company(self, key: str) -> CompanyRuntime:
        rt = self.companies.get(key)
        if rt is None:
            raise NotFound(f"unknown company '{key}'")
        return rt

    def procedure_for_version(self, conn: Connection, version_id: int) -> CompiledProcedure:
        """The compiled procedure a case pinned, rebuilt from the database if needed."""
        hit = self._by_version_id.get(version_id)
        if hit is not None:
            return hit[0]
        row = conn.execute(
            select(t.procedure_version, t.company.c.key.label("company_key"))
            .join(t.company, t.company.c.id == t.procedure_version.c.company_id)
            .where(t.procedure_version.c.id == version_id)
        ).one()
        pack = PackDef.model_validate(row.definition)
        proc = compile_procedure(
            pack,
            row.params,
            company=row.company_key,
            effects=self.catalog.effects,
            raw=row.definition,
        )
        proc.version = row.version
        self._by_version_id[version_id] = (proc, row.company_id)
        return proc

    def pinned(self, view: CaseView) -> CompiledProcedure:
        """The procedure version a case is pinned to (its steps, labels and forms)."""
        rt = self.company(view.company)
        for proc, company_id in self._by_version_id.values():
            if (
                company_id == rt.id
                and proc.key == view.procedure
                and proc.version == view.procedure_version
            ):
                return proc
        pv = t.procedure_version
        with self.db.read() as conn:
            vid = conn.execute(
                select(pv.c.id).where(
                    pv.c.company_id == rt.id,
                    pv.c.procedure == view.procedure,
                    pv.c.version == view.procedure_version,
                )
            ).scalar_one()
            return self.procedure_for_version(conn, vid)

    # -- actors ------------------------------------------------------------------------
    def actor(self, company: str, username: str) -> Actor:
        """Load an actor's departments and roles in ``company`` (NotAllowed if not a member)."""
        rt = self.company(company)
        with self.db.read() as conn:
            row = conn.execute(
                select(t.membership.c.departments, t.membership.c.roles)
                .join(t.app_user, t.app_user.c.id == t.membership.c.user_id)
                .where(
                    t.app_user.c.username == username,
                    t.membership.c.company_id == rt.id,
                    t.app_user.c.active.is_(True),
                )
            ).first()
        if row is None:
            raise NotAllowed(f"'{username}' is not a member of company '{company}'")
        return Actor(username, company, frozenset(row.departments), frozenset(row.roles))

    def holds(self, actor: Actor, rt: CompanyRuntime, procedure: str, role: str) -> bool:
        """Whether ``actor`` holds ``role`` of ``procedure`` in this company."""
        if actor.system:
            return True
        if role in actor.roles:
            return True
        settings = rt.definition.procedures.get(procedure)
        holders = (settings.roles.get(role) if settings else None) or rt.definition.roles.get(role)
        if holders is None:
            return False
        return actor.username in holders.people or bool(
            actor.departments & set(holders.departments)
        )

    def roles_of(self, actor: Actor, rt: CompanyRuntime, proc: CompiledProcedure) -> set[str]:
        return {r for r in proc.pack.roles if self.holds(actor, rt, proc.key, r)}

    # -- reading ------------------------------------------------------------------------
    def _case_row(self, conn: Connection, rt: CompanyRuntime, case_id: int) -> Any:
        row = conn.execute(_SEL_CASE, {"cid": case_id, "co": rt.id}).first()
        if row is None:
            # another company's case is "not found" too: never reveal it exists
            raise NotFound(f"case {case_id} not found")
        return row

    def _view(self, rt: CompanyRuntime, row: Any, proc: CompiledProcedure) -> CaseView:
        return CaseView(
            row.id,
            rt.key,
            row.procedure,
            proc.version,
            row.number,
            row.status,
            row.step,
            dict(row.fields),
            list(row.assignees),
            row.version,
            row.created_by,
            row.created_at,
            row.updated_at,
            row.closed_at,
            row.next_due_at,
        )

    def get_case(self, company: str, case_id: int) -> CaseView:
        rt = self.company(company)
        with self.db.read() as conn:
            row = self._case_row(conn, rt, case_id)
            return self._view(rt, row, self.procedure_for_version(conn, row.procedure_version_id))

    def journal(self, company: str, case_id: int) -> list[dict[str, Any]]:
        rt = self.company(company)
        with self.db.read() as conn:
            self._case_row(conn, rt, case_id)
            rows = conn.execute(
                select(t.journal)
                .where(t.journal.c.company_id == rt.id, t.journal.c.case_id == case_id)
                .order_by(t.journal.c.seq)
            ).all()
        return [dict(r._mapping) for r in rows]

    def outbox(self, company: str, case_id: int | None = None) -> list[dict[str, Any]]:
        rt = self.company(company)
        q = select(t.outbox).where(t.outbox.c.company_id == rt.id)
        if case_id is not None:
            q = q.where(t.outbox.c.case_id == case_id)
        with self.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(q.order_by(t.outbox.c.id)).all()]

    def available_actions(self, company: str, case_id: int, actor: Actor) -> list[ActionView]:
        rt = self.company(company)
        with self.db.read() as conn:
            row = self._case_row(conn, rt, case_id)
            proc = self.procedure_for_version(conn, row.procedure_version_id)
        if row.status != "open":
            return []
        step = proc.step(row.step)
        facts = proc.facts(row.fields, event="guard", step=row.step)
        open_guards = self._guards(proc, facts)
        out = []
        for name, act in step.actions.items():
            if not any(
                self.holds(actor, rt, proc.key, r) for r in proc.action_roles(row.step, name)
            ):
                continue
            if (row.step, name) in proc.guards and f"{row.step}.{name}" not in open_guards:
                continue
            out.append(
                ActionView(
                    name,
                    act.label.model_dump(by_alias=True),
                    act.to,
                    _ordered(act.ask, act.require),
                    list(act.require),
                )
            )
        return out

    def _guards(self, proc: CompiledProcedure, facts: Mapping[str, Any]) -> frozenset[str]:
        if not proc.guards:
            return frozenset()
        return self.evaluator.evaluate(proc.guard_ruleset, facts)

    # -- writing ------------------------------------------------------------------------
    def open_case(
        self, company: str, procedure: str, actor: Actor, data: Mapping[str, Any]
    ) -> ActResult:
        rt = self.company(company)
        proc = rt.procedures.get(procedure)
        if proc is None:
            raise NotFound(f"procedure '{procedure}' is not enabled for company '{company}'")
        if not any(self.holds(actor, rt, procedure, r) for r in proc.pack.open.role):
            raise NotAllowed(
                f"opening a {procedure} case needs one of the roles: {', '.join(proc.pack.open.role)}",
                roles=list(proc.pack.open.role),
            )
        opening = proc.pack.open
        values, errors = coerce_fields(
            proc, data, _ordered(opening.ask, opening.require), opening.require
        )
        if errors:
            raise InvalidInput("the opening form has errors", errors=errors)
        try:
            with self.db.write() as conn:
                case_id, result = self._open_in(conn, rt, proc, actor, values, depth=0)
                view = self._view(rt, self._case_row(conn, rt, case_id), proc)
        except BaseException:
            self.events.drop()
            raise
        self.flush_events()
        return ActResult(view, result[0], result[1], result[2])

    def flush_events(self) -> int:
        """Hand the committed change's lifecycle events to the plugins (see core.cases.events)."""
        return emit(self.events.take(), {k: rt.definition for k, rt in self.companies.items()})

    def _queue_events(
        self,
        rt: CompanyRuntime,
        proc: CompiledProcedure,
        case_id: int,
        number: str,
        actor: str,
        now: dt.datetime,
        from_step: str | None,
        change: Change,
        action: str | None,
        opened: bool = False,
    ) -> None:
        if not listening():  # nobody would hear them: do not build them
            return

        def event(kind: str) -> CaseEvent:
            return CaseEvent(
                kind,
                rt.key,
                case_id,
                number,
                proc.key,
                change.step,
                actor,
                now,
                from_step=from_step,
                action=action,
                fields=dict(change.fields),
            )

        if opened:
            self.events.add(event("opened"))
        if action is not None:
            self.events.add(event("action_done"))
        if opened or change.step != from_step:
            self.events.add(event("step_entered"))
            if proc.step(change.step).final:
                self.events.add(event("closed"))

    def _open_in(
        self,
        conn: Connection,
        rt: CompanyRuntime,
        proc: CompiledProcedure,
        actor: Actor,
        values: dict[str, Any],
        depth: int,
    ) -> tuple[int, tuple[list[str], list[int], list[int]]]:
        now = self.clock.now()
        number = self._next_number(conn, rt, proc, now)
        start = proc.pack.start
        change = Change(
            proc, number, dict(values), start, _role_assignees(proc, start), "open", now=now
        )
        change.context = {
            "conn": conn,
            "company_id": rt.id,
            "company": rt.definition,
            "case_id": None,
        }
        change.facts = proc.facts(change.fields, event="opened", step=start)
        fired = self._apply_rules(proc, change)
        if change.refusal:
            raise Refused(change.refusal[1], rule=change.refusal[0])
        status = "closed" if proc.step(change.step).final else "open"
        if change.step != start and not _assigned_by_rule(change):
            change.assignees = _role_assignees(proc, change.step)
        case_id = conn.execute(
            insert(t.case).values(
                company_id=rt.id,
                procedure_version_id=self._version_id(rt, proc),
                procedure=proc.key,
                number=number,
                status=status,
                step=change.step,
                fields=change.fields,
                assignees=[a.to_json() for a in change.assignees],
                version=1,
                created_by=actor.username,
                created_at=now,
                updated_at=now,
                closed_at=now if status == "closed" else None,
            )
        ).inserted_primary_key[0]  # type: ignore[index]  # always set after an INSERT
        self._write_assignees(conn, rt, case_id, change.assignees)
        first = {"kind": "opened", "data": {"number": number, "fields": values, "step": start}}
        seqs = self._persist_effects(conn, rt, proc, case_id, actor, change, first, action=None)
        self._queue_events(
            rt, proc, case_id, number, actor.username, now, None, change, None, opened=True
        )
        linked = self._open_linked(conn, rt, proc, case_id, actor, change, depth)
        self._after_change(conn, rt, proc, case_id)
        return case_id, (sorted(fired), seqs, linked)

    def act(
        self,
        company: str,
        case_id: int,
        action: str,
        actor: Actor,
        data: Mapping[str, Any],
        expected_version: int,
    ) -> ActResult:
        try:
            result = self._act(company, case_id, action, actor, data, expected_version)
        except BaseException:
            self.events.drop()
            raise
        self.flush_events()
        return result

    def _act(
        self,
        company: str,
        case_id: int,
        action: str,
        actor: Actor,
        data: Mapping[str, Any],
        expected_version: int,
    ) -> ActResult:
        rt = self.company(company)
        with self.db.write() as conn:
            row = self._case_row(conn, rt, case_id)
            proc = self.procedure_for_version(conn, row.procedure_version_id)
            if row.version != expected_version:
                raise Conflict(
                    f"case {row.number} is at version {row.version}, not {expected_version}",
                    current_version=row.version,
                )
            act_def = proc.action(row.step, action) if row.status == "open" else None
            if act_def is None:
                raise ActionUnavailable(
                    f"action '{action}' is not available at step '{row.step}'",
                    step=row.step,
                    current_version=row.version,
                )
            roles = proc.action_roles(row.step, action)
            if not any(self.holds(actor, rt, proc.key, r) for r in roles):
                raise NotAllowed(
                    f"'{action}' needs one of the roles: {', '.join(roles)}", roles=roles
                )
            if (row.step, action) in proc.guards:
                facts = proc.facts(row.fields, event="guard", step=row.step)
                if f"{row.step}.{action}" not in self._guards(proc, facts):
                    raise ActionUnavailable(
                        f"action '{action}' is not available now (its guard is false)",
                        step=row.step,
                        current_version=row.version,
                    )
            merged_required = [r for r in act_def.require if r not in data or data.get(r) is None]
            values, errors = coerce_fields(proc, data, _ordered(act_def.ask, act_def.require), [])
            for name in merged_required:
                if name not in errors and row.fields.get(name) is None and values.get(name) is None:
                    errors[name] = "required"
            if errors:
                raise InvalidInput("the form has errors", errors=errors)
            now = self.clock.now()
            fields = dict(row.fields)
            fields.update(values)
            target = act_def.to or row.step
            assignees = [Assignee.parse(a) for a in row.assignees]
            if target != row.step:
                assignees = _role_assignees(proc, target)
            change = Change(proc, row.number, fields, target, assignees, row.status, now=now)
            change.context = {
                "conn": conn,
                "company_id": rt.id,
                "company": rt.definition,
                "case_id": case_id,
            }
            change.facts = proc.facts(
                fields, event="action", step=target, action=action, from_step=row.step
            )
            fired = self._apply_rules(proc, change)
            if change.refusal:
                raise Refused(change.refusal[1], rule=change.refusal[0])
            if change.step != target and not _assigned_by_rule(change):
                change.assignees = _role_assignees(proc, change.step)
            final = proc.step(change.step).final
            if final:
                change.assignees = []
            status = "closed" if final else "open"
            res = conn.execute(
                _UPD_CASE,
                {
                    "cid": case_id,
                    "expected": expected_version,
                    "fields": change.fields,
                    "step": change.step,
                    "status": status,
                    "assignees": [a.to_json() for a in change.assignees],
                    "new_version": expected_version + 1,
                    "now": now,
                    "closed_at": now if final else None,
                },
            )
            if res.rowcount != 1:  # someone committed between our read and this write
                raise Conflict(f"case {row.number} changed while acting", current_version=None)
            if [a.to_json() for a in change.assignees] != list(row.assignees):
                self._write_assignees(conn, rt, case_id, change.assignees, replace=True)
            first = {
                "kind": "action",
                "action": action,
                "data": {"fields": values, "from_step": row.step, "to_step": target},
            }
            seqs = self._persist_effects(
                conn, rt, proc, case_id, actor, change, first, action=action
            )
            self._queue_events(
                rt, proc, case_id, row.number, actor.username, now, row.step, change, action
            )
            if final:
                seqs += self._journal(
                    conn,
                    rt,
                    [{"kind": "closed", "data": {"step": change.step}}],
                    case_id,
                    actor.username,
                    proc.version,
                )
            linked = self._open_linked(conn, rt, proc, case_id, actor, change, 0)
            self._after_change(conn, rt, proc, case_id)
            next_due = row.next_due_at
            if deadlines.needs_time(proc):
                next_due = conn.execute(
                    select(t.case.c.next_due_at).where(t.case.c.id == case_id)
                ).scalar()
        view = CaseView(
            row.id,
            rt.key,
            row.procedure,
            proc.version,
            row.number,
            status,
            change.step,
            change.fields,
            [a.to_json() for a in change.assignees],
            expected_version + 1,
            row.created_by,
            row.created_at,
            now,
            now if final else None,
            next_due,
        )
        return ActResult(view, fired, seqs, linked)

    # -- time: deadlines and timers ----------------------------------------------------------
    def calendar(self, company: str) -> WorkingCalendar:
        """The company's working calendar (``calendar:`` in its config, in its time zone)."""
        rt = self.company(company)
        cal = self._calendars.get(rt.key)
        if cal is None:
            cal = self._calendars[rt.key] = WorkingCalendar(
                rt.definition.calendar, rt.definition.timezone
            )
        return cal

    def _journal_rows(
        self, conn: Connection, rt: CompanyRuntime, case_id: int
    ) -> list[dict[str, Any]]:
        rows = conn.execute(
            select(t.journal.c.at, t.journal.c.kind, t.journal.c.action, t.journal.c.data)
            .where(t.journal.c.company_id == rt.id, t.journal.c.case_id == case_id)
            .order_by(t.journal.c.seq)
        ).all()
        return [dict(r._mapping) for r in rows]

    def _deadlines_in(
        self,
        conn: Connection,
        rt: CompanyRuntime,
        proc: CompiledProcedure,
        case_id: int,
        now: dt.datetime,
    ) -> list[deadlines.Deadline]:
        journal = self._journal_rows(conn, rt, case_id)
        return deadlines.compute(
            proc.slas,
            journal,
            self.calendar(rt.key),
            now,
            lambda fields, step: proc.facts(fields, event="timer", step=step),
        )

    def deadlines(
        self, company: str, case_id: int, now: dt.datetime | None = None
    ) -> list[deadlines.Deadline]:
        """Every deadline of a case at ``now`` (default: the clock), explained."""
        rt = self.company(company)
        with self.db.read() as conn:
            row = self._case_row(conn, rt, case_id)
            proc = self.procedure_for_version(conn, row.procedure_version_id)
            return self._deadlines_in(conn, rt, proc, case_id, now or self.clock.now())

    def _after_change(
        self, conn: Connection, rt: CompanyRuntime, proc: CompiledProcedure, case_id: int
    ) -> None:
        """Recompute the case's deadlines and (re)schedule its timers, in the change's transaction."""
        if not deadlines.needs_time(proc):
            return
        deadlines.refresh(self, conn, rt, proc, case_id)

    def system_change(
        self,
        conn: Connection,
        company_id: int,
        case_id: int,
        entry: dict[str, Any],
        effects: Sequence[tuple[Any, Any]],
        rule_id: str,
    ) -> None:
        """Apply effects to a case outside a user action (an SLA escalation, a timer).

        Runs in ``conn`` (the worker's transaction that also marks the timer done), writes
        the case, its journal (``entry`` first, actor ``system``), outbox and linked cases,
        and bumps the case version like an action does.
        """
        rt = next(r for r in self.companies.values() if r.id == company_id)
        row = conn.execute(_SEL_CASE, {"cid": case_id, "co": rt.id}).one()
        proc = self.procedure_for_version(conn, row.procedure_version_id)
        now = self.clock.now()
        actor = Actor("system", rt.key, system=True)
        change = Change(
            proc,
            row.number,
            dict(row.fields),
            row.step,
            [Assignee.parse(a) for a in row.assignees],
            row.status,
            now=now,
        )
        change.facts = proc.facts(row.fields, event="timer", step=row.step)
        change.context = {
            "conn": conn,
            "company_id": rt.id,
            "company": rt.definition,
            "case_id": case_id,
        }
        for etype, args in effects:
            etype.apply(change, args, rule_id)
        if change.refusal:  # a refusal cannot undo time: journal it, change nothing else
            refused = f"rule '{change.refusal[0]}' refused: {change.refusal[1]}"
            entry = {**entry, "data": {**entry.get("data", {}), "refused": refused}}
            change = Change(
                proc,
                row.number,
                dict(row.fields),
                row.step,
                [Assignee.parse(a) for a in row.assignees],
                row.status,
                now=now,
            )
        if change.step != row.step and not _assigned_by_rule(change):
            change.assignees = _role_assignees(proc, change.step)
        final = proc.step(change.step).final
        if final:
            change.assignees = []
        status = "closed" if final else row.status
        conn.execute(
            _UPD_CASE,
            {
                "cid": case_id,
                "expected": row.version,
                "fields": change.fields,
                "step": change.step,
                "status": status,
                "assignees": [a.to_json() for a in change.assignees],
                "new_version": row.version + 1,
                "now": now,
                "closed_at": now if final and row.status != "closed" else row.closed_at,
            },
        )
        if [a.to_json() for a in change.assignees] != list(row.assignees):
            self._write_assignees(conn, rt, case_id, change.assignees, replace=True)
        self._persist_effects(conn, rt, proc, case_id, actor, change, entry, action=None)
        self._queue_events(rt, proc, case_id, row.number, "system", now, row.step, change, None)
        if final and row.status != "closed":
            self._journal(
                conn,
                rt,
                [{"kind": "closed", "data": {"step": change.step}}],
                case_id,
                "system",
                proc.version,
            )
        self._open_linked(conn, rt, proc, case_id, actor, change, 0)
        self._after_change(conn, rt, proc, case_id)

    # -- internals ------------------------------------------------------------------------
    def _version_id(self, rt: CompanyRuntime, proc: CompiledProcedure) -> int:
        return rt.version_ids[proc.key]

    def _apply_rules(self, proc: CompiledProcedure, change: Change) -> list[str]:
        fired = self.evaluator.evaluate(proc.ruleset, change.facts)
        order = []
        for rule in proc.rules:  # declared order, whatever order the engine fired them in
            if rule.id not in fired:
                continue
            order.append(rule.id)
            for etype, args in rule.effects:
                etype.apply(change, args, rule.id)
        return order

    def _persist_effects(
        self,
        conn: Connection,
        rt: CompanyRuntime,
        proc: CompiledProcedure,
        case_id: int,
        actor: Actor,
        change: Change,
        first: dict[str, Any],
        action: str | None,
    ) -> list[int]:
        entries = [first] + [
            {
                "kind": j.kind,
                "action": action,
                "rule_id": j.rule_id,
                "data": j.data,
                "facts": j.facts,
            }
            for j in change.journal
        ]
        seqs = self._journal(conn, rt, entries, case_id, actor.username, proc.version)
        if change.outbox:
            conn.execute(
                _INS_OUTBOX,
                [
                    {
                        "company_id": rt.id,
                        "case_id": case_id,
                        "journal_seq": seqs[0],
                        "channel": msg.channel,
                        "recipient": msg.recipient,
                        "template": msg.template,
                        "payload": msg.payload,
                        "idempotency_key": f"{rt.id}:{seqs[0]}:{i}",
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": change.now,
                        "created_at": change.now,
                        "sent_at": None,
                        "last_error": None,
                    }
                    for i, msg in enumerate(change.outbox)
                ],
            )
        return seqs

    def _journal(
        self,
        conn: Connection,
        rt: CompanyRuntime,
        entries: Sequence[Mapping[str, Any]],
        case_id: int | None,
        actor: str,
        pversion: int | None,
    ) -> list[int]:
        """Append entries to the company's hash chain (the head row lock serialises writers)."""
        head = conn.execute(_SEL_HEAD, {"co": rt.id}).one()
        seq, prev = head.seq, head.hash
        now = self.clock.now()
        rows, seqs = [], []
        for e in entries:
            seq += 1
            part = _hashed_part(
                rt.id,
                seq,
                now,
                actor,
                e["kind"],
                case_id,
                e.get("action"),
                e.get("rule_id"),
                pversion,
                e.get("data", {}),
                e.get("facts"),
            )
            h = entry_hash(prev, part)
            rows.append(
                {
                    "company_id": rt.id,
                    "seq": seq,
                    "case_id": case_id,
                    "at": now,
                    "actor": actor,
                    "kind": e["kind"],
                    "action": e.get("action"),
                    "rule_id": e.get("rule_id"),
                    "procedure_version": pversion,
                    "data": e.get("data", {}),
                    "facts": e.get("facts"),
                    "prev_hash": prev,
                    "hash": h,
                }
            )
            seqs.append(seq)
            prev = h
        conn.execute(_INS_JOURNAL, rows)
        conn.execute(_UPD_HEAD, {"co": rt.id, "seq": seq, "hash": prev})
        return seqs

    def _write_assignees(
        self,
        conn: Connection,
        rt: CompanyRuntime,
        case_id: int,
        assignees: list[Assignee],
        replace: bool = False,
    ) -> None:
        if replace:
            conn.execute(_DEL_ASSIGNEES, {"cid": case_id})
        if assignees:
            conn.execute(
                _INS_ASSIGNEES,
                [
                    {"case_id": case_id, "kind": a.kind, "ref": a.ref, "company_id": rt.id}
                    for a in assignees
                ],
            )

    def _next_number(
        self, conn: Connection, rt: CompanyRuntime, proc: CompiledProcedure, now: dt.datetime
    ) -> str:
        settings = rt.definition.procedures.get(proc.key) or ProcedureSettings()
        request = NumberRequest(conn, rt.id, rt.definition, proc.key, settings.numbering, now)
        return numbering.next_number(request, settings.number_scheme)

    def _open_linked(
        self,
        conn: Connection,
        rt: CompanyRuntime,
        proc: CompiledProcedure,
        case_id: int,
        actor: Actor,
        change: Change,
        depth: int,
    ) -> list[int]:
        out = []
        for req in change.linked:
            if depth >= MAX_LINK_DEPTH:
                raise Refused(
                    f"rule '{req.rule_id}' would open linked cases more than {MAX_LINK_DEPTH} deep",
                    rule=req.rule_id,
                )
            target = rt.procedures.get(req.procedure)
            if target is None:
                raise Refused(
                    f"rule '{req.rule_id}' opens a '{req.procedure}' case, which is not enabled",
                    rule=req.rule_id,
                )
            values, errors = coerce_fields(
                target,
                {k: v for k, v in req.fields.items() if v is not None},
                list(target.pack.fields),
                [],
            )
            if errors:
                raise Refused(
                    f"rule '{req.rule_id}' gives the linked case bad fields: {errors}",
                    rule=req.rule_id,
                )
            system = Actor(actor.username, rt.key, actor.departments, actor.roles, system=True)
            new_id, _ = self._open_in(conn, rt, target, system, values, depth + 1)
            conn.execute(
                insert(t.case_link).values(
                    company_id=rt.id,
                    from_case_id=case_id,
                    to_case_id=new_id,
                    link=req.link,
                    rule_id=req.rule_id,
                    created_at=change.now,
                )
            )
            self._journal(
                conn,
                rt,
                [
                    {
                        "kind": "linked",
                        "rule_id": req.rule_id,
                        "data": {"link": req.link, "case": new_id, "procedure": req.procedure},
                    }
                ],
                case_id,
                actor.username,
                proc.version,
            )
            out.append(new_id)
        return out

    # -- audit --------------------------------------------------------------------------
    def verify_journal(self, company: str | None = None) -> list[tuple[str, int | None, str]]:
        """Check every company's hash chain; returns (company, first bad seq, problem) per break."""
        problems: list[tuple[str, int | None, str]] = []
        with self.db.read() as conn:
            companies = conn.execute(select(t.company.c.id, t.company.c.key)).all()
            for c in companies:
                if company and c.key != company:
                    continue
                problems.extend(verify_chain(conn, c.id, c.key))
        return problems


def verify_chain(
    conn: Connection, company_id: int, company_key: str
) -> list[tuple[str, int | None, str]]:
    prev = GENESIS
    expected_seq = 0
    rows = conn.execute(
        select(t.journal).where(t.journal.c.company_id == company_id).order_by(t.journal.c.seq)
    )
    for r in rows:
        expected_seq += 1
        if r.seq != expected_seq:
            return [
                (company_key, expected_seq, f"entry {expected_seq} is missing (next is {r.seq})")
            ]
        if r.prev_hash != prev:
            return [(company_key, r.seq, "prev_hash does not match the entry before it")]
        part = _hashed_part(
            company_id,
            r.seq,
            r.at,
            r.actor,
            r.kind,
            r.case_id,
            r.action,
            r.rule_id,
            r.procedure_version,
            r.data,
            r.facts,
        )
        if entry_hash(prev, part) != r.hash:
            return [(company_key, r.seq, "content does not match its hash (the entry was changed)")]
        prev = r.hash
    head = conn.execute(
        select(t.journal_head).where(t.journal_head.c.company_id == company_id)
    ).first()
    if head is not None and (head.seq != expected_seq or head.hash != prev):
        return [
            (
                company_key,
                expected_seq + 1 if head.seq > expected_seq else head.seq,
                f"the chain ends at {expected_seq} but its head says {head.seq} (entries deleted?)",
            )
        ]
    return []


def _ordered(ask: Sequence[str], require: Sequence[str]) -> list[str]:
    out = list(ask)
    out += [r for r in require if r not in out]
    return out


def _role_assignees(proc: CompiledProcedure, step: str) -> list[Assignee]:
    st = proc.step(step)
    return [] if st.final else [Assignee("role", r) for r in st.role if r != "customer"]


def _assigned_by_rule(change: Change) -> bool:
    return any(j.kind == "assigned" for j in change.journal)
