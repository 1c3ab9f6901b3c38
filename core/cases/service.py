"""The case service: the facade the API, the CLI, the worker and scenarios call.

Reading (a case, its journal, its deadlines, the actions an actor may take) happens
here; every **change** of a case — opening, an action, a timer or schedule firing, a
linked case — goes through the one commit pipeline, :class:`core.cases.commit.Pipeline`,
inside one write transaction, and the lifecycle events it queued are handed to the
plugins only after that transaction committed. A stale ``expected_version`` raises
:class:`~core.errors.Conflict`; a refusing rule :class:`~core.errors.Refused`; an engine
crash :class:`~core.errors.EngineUnavailable`; in each case nothing is written.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from core.cases import attachments, deadlines, schedules, signatures
from core.cases import journal as chain
from core.cases.commit import (
    SEL_CASE,
    ActionUnavailable,
    Actor,
    Committed,
    CompanyRuntime,
    Pipeline,
    guards_open,
)
from core.cases.events import EventQueue, emit, listening
from core.clock import SystemClock
from core.errors import NotAllowed, NotFound
from core.rules.evaluator import Evaluator, make_evaluator
from core.spec.catalog import Catalog
from core.spec.definitions import PackDef
from core.spec.forms import ordered
from core.spec.loading import LoadedCompany
from core.spec.procedures import CompiledProcedure, compile_procedure
from core.spec.roles import Holding, holding
from core.spec.templates import with_text
from core.storage import schema as t
from core.storage.db import Database
from core.time.calendars import WorkingCalendar

__all__ = [
    "ActResult",
    "ActionUnavailable",
    "ActionView",
    "Actor",
    "CaseService",
    "CaseView",
    "CompanyRuntime",
]

log = logging.getLogger("kefu.audit")


@dataclass
class CaseView:
    """A case as a reader sees it (what the API returns)."""

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
    version_id: int | None = None  # the procedure_version row the case is pinned to


@dataclass
class ActionView:
    """An action an actor may take now: its label, target step and form."""

    name: str
    label: dict[str, str | None]
    to: str | None  # None: it stays, or its to: branches decide on the case
    ask: list[str]
    require: list[str]


@dataclass
class ActResult:
    """The outcome of opening or acting: the case after, rules fired, journal entries written."""

    case: CaseView
    fired: list[str]
    journal: list[int]
    linked: list[int] = field(default_factory=list)


class CaseService:
    """Cases of every configured company: read them, and change them through the pipeline."""

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
        # one evaluator given: every company uses it; else one per kind a company names
        # (``rules_engine:`` in its config), the default kind for the others
        self._given = evaluator if not isinstance(evaluator, str | None) else None
        self._default_kind = evaluator if isinstance(evaluator, str) else None
        self._evaluators: dict[str | None, Evaluator] = {}
        self.companies: dict[str, CompanyRuntime] = {}
        self._by_id: dict[int, CompanyRuntime] = {}
        self._by_version_id: dict[int, tuple[CompiledProcedure, int]] = {}
        self._calendars: dict[str, WorkingCalendar] = {}
        self.events = EventQueue()
        # what each lately changed case's last change left for its next (deadlines)
        self.time_memory = deadlines.TimeMemory()
        # each company's journal head at this service's last checkpoint of it
        self._checkpointed: dict[str, int] = {}

    # -- what the pipeline needs (core.cases.commit.Context) ----------------------------
    def now(self) -> dt.datetime:
        """The service clock's now (a test clock in scenarios)."""
        return self.clock.now()

    def evaluator_for(self, rt: CompanyRuntime) -> Evaluator:
        """The rule evaluator of a company, started on first use (durable: a child process)."""
        if self._given is not None:
            return self._given
        kind = rt.definition.rules_engine or self._default_kind
        ev = self._evaluators.get(kind)
        if ev is None:
            ev = self._evaluators[kind] = make_evaluator(kind)
        return ev

    @property
    def evaluator(self) -> Evaluator:
        """The default rule evaluator (companies that name none in their config use it)."""
        if self._given is not None:
            return self._given
        ev = self._evaluators.get(self._default_kind)
        if ev is None:
            ev = self._evaluators[self._default_kind] = make_evaluator(self._default_kind)
        return ev

    def use_evaluator(self, evaluator: Evaluator) -> None:
        """From now on every company's rules run on ``evaluator`` (tools and tests)."""
        self._given = evaluator

    def number_schemes(self) -> Mapping[str, Any]:
        """Case-number schemes of the installed plugins, by name."""
        return self.catalog.extensions.schemes

    def change_context(self) -> dict[str, Any]:
        """What effects may read besides the change: the plugin registry (``extensions``)."""
        return {"extensions": self.catalog.extensions}

    def listening(self) -> bool:
        """Whether a plugin hears lifecycle events (else none are built)."""
        return listening(self.catalog.extensions)

    def pipeline(self, conn: Connection, rt: CompanyRuntime) -> Pipeline:
        """The commit pipeline of ``rt`` in the write transaction ``conn``."""
        return Pipeline(self, conn, rt)

    def close(self) -> None:
        """Stop the evaluators (the durable child process) and close the database."""
        evaluators = [self._given] if self._given is not None else list(self._evaluators.values())
        for ev in evaluators:
            ev.close()
        self.db.dispose()

    # -- start-up ----------------------------------------------------------------------
    def sync(self) -> None:
        """Register companies and procedure versions from the catalog (idempotent).

        A pack whose content or parameters changed gets a new version; running cases
        keep the version they started on.
        """
        with self.db.write() as conn:
            for key, lc in self.catalog.companies.items():
                rt = self.companies[key] = self._sync_company(conn, lc)
                self._by_id[rt.id] = rt
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
            conn.execute(
                insert(t.journal_head).values(company_id=company_id, seq=0, hash=chain.GENESIS)
            )
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
        """The running company ``key`` (NotFound when it is not configured)."""
        rt = self.companies.get(key)
        if rt is None:
            raise NotFound(f"unknown company '{key}'")
        return rt

    def company_by_id(self, company_id: int) -> CompanyRuntime | None:
        """The running company with this database id, if configured."""
        return self._by_id.get(company_id)

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
        pack = PackDef.model_validate(
            row.definition, context=self.catalog.extensions.validation_context()
        )
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
        if view.version_id is not None:
            hit = self._by_version_id.get(view.version_id)
            if hit is not None:
                return hit[0]
            with self.db.read() as conn:
                return self.procedure_for_version(conn, view.version_id)
        with self.db.read() as conn:  # a view built by hand: find its version row
            rt = self.company(view.company)
            pv = t.procedure_version
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

    def holding(
        self, actor: Actor, rt: CompanyRuntime, procedure: str, role: str
    ) -> Holding | None:
        """Whether (and why) ``actor`` holds ``role`` of ``procedure`` in this company."""
        if actor.system:
            return Holding(role, "system")
        return holding(
            rt.definition, procedure, role, actor.username, actor.departments, actor.roles
        )

    def holds(self, actor: Actor, rt: CompanyRuntime, procedure: str, role: str) -> bool:
        """Whether ``actor`` holds ``role`` of ``procedure`` in this company."""
        return self.holding(actor, rt, procedure, role) is not None

    def roles_of(self, actor: Actor, rt: CompanyRuntime, proc: CompiledProcedure) -> set[str]:
        """The roles of ``proc`` that ``actor`` holds."""
        return {r for r in proc.pack.roles if self.holds(actor, rt, proc.key, r)}

    # -- reading ------------------------------------------------------------------------
    def _case_row(self, conn: Connection, rt: CompanyRuntime, case_id: int) -> Any:
        row = SEL_CASE.first(conn, {"cid": case_id, "co": rt.id})
        if row is None:
            # another company's case is "not found" too: never reveal it exists
            raise NotFound(f"case {case_id} not found")
        return row

    def _view(self, rt: CompanyRuntime, row: Any, proc: CompiledProcedure) -> CaseView:
        r = row if isinstance(row, Mapping) else row._mapping
        return CaseView(
            r["id"],
            rt.key,
            r["procedure"],
            proc.version,
            r["number"],
            r["status"],
            r["step"],
            dict(r["fields"]),
            list(r["assignees"]),
            r["version"],
            r["created_by"],
            r["created_at"],
            r["updated_at"],
            r["closed_at"],
            r["next_due_at"],
            r.get("procedure_version_id", rt.version_ids.get(r["procedure"])),
        )

    def case_id_by_number(self, company: str, number: str) -> int | None:
        """The id of ``company``'s case numbered ``number`` (one index seek), or None."""
        rt = self.company(company)
        with self.db.read() as conn:
            found = conn.execute(
                select(t.case.c.id).where(t.case.c.company_id == rt.id, t.case.c.number == number)
            ).scalar()
        return None if found is None else int(found)

    def get_case(self, company: str, case_id: int) -> CaseView:
        """One case of ``company`` (NotFound for another company's case)."""
        rt = self.company(company)
        with self.db.read() as conn:
            row = self._case_row(conn, rt, case_id)
            return self._view(rt, row, self.procedure_for_version(conn, row.procedure_version_id))

    def journal(self, company: str, case_id: int) -> list[dict[str, Any]]:
        """A case's journal entries, oldest first (NotFound for another company's case)."""
        rt = self.company(company)
        with self.db.read() as conn:
            self._case_row(conn, rt, case_id)
            rows = conn.execute(
                select(t.journal)
                .where(t.journal.c.company_id == rt.id, t.journal.c.case_id == case_id)
                .order_by(t.journal.c.seq)
            ).all()
        return [dict(r._mapping) for r in rows]

    def signatures(self, company: str, case_id: int) -> list[dict[str, Any]]:
        """A case's signatures, void ones included, oldest first."""
        rt = self.company(company)
        with self.db.read() as conn:
            self._case_row(conn, rt, case_id)
            return signatures.of_case(conn, rt.id, case_id)

    def uploads(self, company: str, case_id: int) -> list[dict[str, Any]]:
        """The files a case holds (attachment fields), oldest first."""
        rt = self.company(company)
        with self.db.read() as conn:
            self._case_row(conn, rt, case_id)
            return attachments.case_uploads(conn, rt.id, case_id)

    def outbox(self, company: str, case_id: int | None = None) -> list[dict[str, Any]]:
        """The company's outgoing messages (of one case), oldest first."""
        rt = self.company(company)
        q = select(t.outbox).where(t.outbox.c.company_id == rt.id)
        if case_id is not None:
            q = q.where(t.outbox.c.case_id == case_id)
        with self.db.read() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q.order_by(t.outbox.c.id)).all()]
        for row in rows:  # rendered here, outside any write transaction
            row["payload"] = with_text(row["payload"] or {})
        return rows

    def available_actions(self, company: str, case_id: int, actor: Actor) -> list[ActionView]:
        """The actions ``actor`` may take on the case now (role held, guard true)."""
        rt = self.company(company)
        with self.db.read() as conn:
            row = self._case_row(conn, rt, case_id)
            proc = self.procedure_for_version(conn, row.procedure_version_id)
            step = proc.step(row.step)
            # four-eyes (not_by:): an action this actor may not take on this case
            checked = {n for a in step.actions.values() for n in a.not_by}
            took = (
                chain.action_takers(
                    conn, rt.id, case_id, [n for n in checked if n not in proc.pack.fields]
                )
                if checked and row.status == "open"
                else {}
            )
        if row.status != "open":
            return []
        blocked = {
            name
            for name, act in step.actions.items()
            if any(
                row.fields.get(n) == actor.username
                if n in proc.pack.fields
                else actor.username in took.get(n, ())
                for n in act.not_by
            )
        }
        asked = proc.derived.actor_roles
        as_seen = (  # roles held through departments and mappings too
            dataclasses.replace(
                actor, roles=frozenset(r for r in asked if self.holds(actor, rt, proc.key, r))
            )
            if asked
            else actor
        )
        facts = proc.facts(
            row.fields,
            event="guard",
            step=row.step,
            now=self.clock.now(),
            calendar=self.calendar(rt.key),
            actor=as_seen,
        )
        open_guards = guards_open(self.evaluator_for(rt), proc, facts)
        out = []
        for name, act in step.actions.items():
            if not any(
                self.holds(actor, rt, proc.key, r) for r in proc.action_roles(row.step, name)
            ):
                continue
            if (row.step, name) in proc.guards and f"{row.step}.{name}" not in open_guards:
                continue
            if name in blocked:
                continue
            out.append(
                ActionView(
                    name,
                    act.label.model_dump(by_alias=True),
                    act.fixed_to,
                    ordered(act.ask, act.require),
                    list(act.require),
                )
            )
        return out

    # -- changing: every door leads into the commit pipeline ------------------------------
    def open_case(
        self, company: str, procedure: str, actor: Actor, data: Mapping[str, Any]
    ) -> ActResult:
        """Open a case of ``procedure`` with the opening form ``data``, in one transaction."""
        rt = self.company(company)
        proc = rt.procedures.get(procedure)
        if proc is None:
            raise NotFound(f"procedure '{procedure}' is not enabled for company '{company}'")
        return self._commit(rt, lambda p: p.open(proc, actor, data))

    def act(
        self,
        company: str,
        case_id: int,
        action: str,
        actor: Actor,
        data: Mapping[str, Any],
        expected_version: int,
    ) -> ActResult:
        """Take ``action`` on a case the actor saw at ``expected_version``, in one transaction."""
        rt = self.company(company)
        return self._commit(rt, lambda p: p.act(case_id, action, actor, data, expected_version))

    def _commit(self, rt: CompanyRuntime, run: Callable[[Pipeline], Committed]) -> ActResult:
        try:
            with self.db.write() as conn:
                done = run(self.pipeline(conn, rt))
        except BaseException:
            self.events.drop()
            raise
        self.flush_events()
        view = self._view(rt, done.row, done.proc)
        return ActResult(view, done.fired, done.journal, done.linked)

    def flush_events(self) -> int:
        """Hand the committed change's lifecycle events to the plugins (see core.cases.events)."""
        return emit(
            self.events.take(),
            {k: rt.definition for k, rt in self.companies.items()},
            self.catalog.extensions,
        )

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

    def forget_remembered(self) -> None:
        """Forget what this process remembers between changes (each case's last change,
        the calendars' answers, the journal's heads): the next changes run as in a process
        that just started."""
        self.time_memory.clear()
        chain.HEADS.clear()
        for cal in self._calendars.values():
            cal.forget_answers()

    def deadlines(
        self, company: str, case_id: int, now: dt.datetime | None = None
    ) -> list[deadlines.Deadline]:
        """Every deadline of a case at ``now`` (default: the clock), explained."""
        rt = self.company(company)
        with self.db.read() as conn:
            row = self._case_row(conn, rt, case_id)
            proc = self.procedure_for_version(conn, row.procedure_version_id)
            history = chain.case_history(conn, rt.id, case_id)
        return deadlines.compute(
            proc.slas,
            history,
            self.calendar(rt.key),
            now or self.clock.now(),
            lambda fields, step: proc.facts(
                fields, event="timer", step=step, calendar=self.calendar(rt.key)
            ),
        )

    # -- audit --------------------------------------------------------------------------
    def verify_journal(
        self, company: str | None = None, checkpoints: Path | None = None
    ) -> list[chain.AuditProblem]:
        """Check every company's journal, its checkpoints (``checkpoints`` or the configured
        file) and case rows; returns every problem found (empty: all is well)."""
        with self.db.read() as conn:
            return chain.verify_all(conn, company, checkpoints)

    def write_checkpoints(
        self, path: Path | None = None, *, unchanged: bool = True
    ) -> list[chain.Checkpoint]:
        """Write a signed checkpoint of every company's journal head (see
        :func:`core.cases.journal.write_checkpoint`) and hand each to the plugins'
        ``kefu_audit_checkpoint``; returns those written. ``unchanged=False`` skips a
        company whose head has not moved since this service's last checkpoint of it."""
        out = []
        done = self._checkpointed
        with self.db.read() as conn:
            heads = conn.execute(
                select(t.company.c.id, t.company.c.key, t.journal_head.c.seq).join(
                    t.journal_head, t.journal_head.c.company_id == t.company.c.id
                )
            ).all()
            for c in heads:
                if not unchanged and done.get(c.key) == c.seq:
                    continue
                cp = chain.write_checkpoint(conn, c.id, c.key, self.clock.now(), path)
                if cp is not None:
                    done[c.key] = cp.seq
                    out.append(cp)
        hook = self.catalog.extensions.hook
        for cp in out:
            if hook is not None:
                try:
                    hook.kefu_audit_checkpoint(checkpoint=cp.as_json())
                except Exception:  # a notary that is down must not stop the worker
                    log.exception("kefu_audit_checkpoint failed for %s at %d", cp.company, cp.seq)
        return out
