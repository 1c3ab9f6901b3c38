"""The commit pipeline: the one way any change of a case is written.

Opening a case, a staff action, a timer or schedule firing, and a case opened by a rule
(a linked case) all go through :class:`Pipeline`, in the caller's write transaction:

1. **permission** — the actor holds a role that may open / take the action (system
   changes skip it); then the version the actor saw, then whether the action is there;
2. **form** — submitted values coerced and checked against the step's form; uploads
   named in attachment fields resolved (:mod:`core.cases.attachments`), the signature
   an action gives worked out (:mod:`core.cases.signatures`);
3. **transition** — the action's target step, and that step's role queue as assignees;
4. **rules** — the pack's rules evaluated on the case's facts (a system change applies
   the effects it was given instead), effects applied to the :class:`Change` in the
   order the rules are declared; a refusal stops a staff change (nothing is written) and
   is journaled by a system change, which then changes nothing else;
5. **assignees** — a step changed by a rule gets that step's role queue, unless a rule
   assigned someone;
6. **final step** — entering a final step closes the case: no assignees, ``closed_at``,
   a ``closed`` journal entry, no running deadlines and no pending timers;
7. **case row** — inserted, or updated where the version is still the one read (a row
   count other than one is a :class:`~core.errors.Conflict`); its search document, its
   inbox queues (``case_assignee``) and the queues' loads (:mod:`core.storage.loads`)
   follow it;
8. **journal** — the change's first entry, every effect's note, signatures voided and
   given, ``closed``; uploads claimed and signatures written with it;
9. **outbox** — messages queued by ``notify`` effects (sent after commit by the worker);
10. **linked cases** — opened through this same pipeline, one level deeper;
11. **deadlines and timers** — replayed from the journal (the entries just written are
    passed in, not read back; the journal before them is what the case's last change in
    this process left, :class:`~core.cases.deadlines.TimeMemory`, when it wrote the
    version read) and the timers whose plan moved re-planned;
12. **events** — queued, and handed to plugins by the caller only after commit.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update

from core.cases import attachments, deadlines, numbering, schedules, search, signatures
from core.cases import journal as chain
from core.cases.events import CaseEvent, EventQueue
from core.errors import Conflict, InvalidInput, NotAllowed, NotFound, Refused
from core.rules.evaluator import Evaluator
from core.spec.definitions import CompanyDef, ProcedureSettings
from core.spec.effects import BUILTIN_EFFECTS, Assignee, Change, EffectType, MoveArgs
from core.spec.fields import item_changes
from core.spec.forms import coerce_fields, ordered
from core.spec.procedures import OPENING, CompiledProcedure, branch_id, required_id
from core.storage import loads
from core.storage import schema as t
from core.storage.db import after_commit
from core.storage.prepared import Prepared, Query
from core.time.calendars import WorkingCalendar

#: how deep rules may open cases from cases (a complaint opens an 8D, which opens …)
MAX_LINK_DEPTH = 3

# The hot path's statements are built once: building a statement per call cost more
# than executing it (bench/actions_bench.py).
SEL_CASE = Query(
    select(t.case).where(t.case.c.id == bindparam("cid"), t.case.c.company_id == bindparam("co"))
)
_CASE_COLUMNS = [c.name for c in t.case.c if c.name != "id"]
_INS_CASE = Query(
    insert(t.case).values({c: bindparam(c) for c in _CASE_COLUMNS}).returning(t.case.c.id)
)
_UPD_CASE = Prepared(
    update(t.case)
    .where(
        t.case.c.id == bindparam("cid"),
        t.case.c.company_id == bindparam("co"),
        t.case.c.version == bindparam("expected"),
    )
    .values(
        fields=bindparam("fields"),
        step=bindparam("step"),
        status=bindparam("status"),
        assignees=bindparam("assignees"),
        version=bindparam("new_version"),
        updated_at=bindparam("now"),
        closed_at=bindparam("closed_at"),
        next_due_at=bindparam("next_due"),
    )
)
_OUTBOX_COLUMNS = (
    "company_id case_id journal_seq channel recipient template payload idempotency_key "
    "status attempts next_attempt_at created_at"
).split()
_INS_OUTBOX = Prepared(insert(t.outbox).values({c: bindparam(c) for c in _OUTBOX_COLUMNS}))
_DEL_ASSIGNEES = Prepared(
    delete(t.case_assignee).where(t.case_assignee.c.case_id == bindparam("cid"))
)
_INS_ASSIGNEES = Prepared(
    insert(t.case_assignee).values({c.name: bindparam(c.name) for c in t.case_assignee.c})
)
_UPD_ASSIGNEES_DUE = Prepared(
    update(t.case_assignee)
    .where(t.case_assignee.c.case_id == bindparam("cid"))
    .values(due_at=bindparam("due"))
)
_INS_LINK = insert(t.case_link)
_SEL_PARENTS = Query(
    select(t.case_link.c.from_case_id, t.case_link.c.link).where(
        t.case_link.c.company_id == bindparam("co"), t.case_link.c.to_case_id == bindparam("cid")
    )
)
_COUNT_OPEN_CHILDREN = (
    select(func.count())
    .select_from(t.case_link)
    .join(t.case, t.case.c.id == t.case_link.c.to_case_id)
    .where(
        t.case_link.c.company_id == bindparam("co"),
        t.case_link.c.from_case_id == bindparam("pid"),
        t.case_link.c.link == bindparam("link"),
        t.case.c.status == "open",
    )
)
#: the move a ``wait_for:`` step makes when the last of its linked cases closed
WAIT_MOVE = next(e for e in BUILTIN_EFFECTS if e.name == "move")


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


def _fresh_items(proc: CompiledProcedure, values: Mapping[str, Any]) -> dict[str, Any]:
    """The values a rule gives a linked case, a list copied into a list field taken as new
    items: the item fields the target's items have, without the source case's item ids
    (ids are per case; the new case numbers its items from 1)."""
    out = dict(values)
    for name, value in values.items():
        fdef = proc.pack.fields.get(name)
        if fdef is None or fdef.type != "list" or not isinstance(value, list):
            continue
        keep = set(fdef.of or ())
        out[name] = [
            {k: v for k, v in item.items() if k in keep} for item in value if isinstance(item, dict)
        ]
    return out


@dataclass
class CompanyRuntime:
    """A company as the service runs it: its id, config and current procedure versions."""

    id: int
    key: str
    definition: CompanyDef
    procedures: dict[str, CompiledProcedure]  # current version per procedure key
    version_ids: dict[str, int]  # procedure key -> procedure_version.id of the current version
    # whether a procedure has a step that waits for its linked cases (``wait_for:``)
    waits: bool = False

    def __post_init__(self) -> None:
        self.waits = any(
            st.wait_for is not None
            for p in self.procedures.values()
            for st in p.pack.steps.values()
        )


@dataclass
class Committed:
    """What one pass of the pipeline wrote."""

    case_id: int
    number: str
    proc: CompiledProcedure
    row: dict[str, Any]  # the case row as written
    fired: list[str]
    journal: list[int]
    linked: list[int] = field(default_factory=list)


class Context(Protocol):
    """What the pipeline needs from the running service (the case service provides it)."""

    events: EventQueue
    time_memory: deadlines.TimeMemory

    def now(self) -> dt.datetime: ...

    def evaluator_for(self, rt: CompanyRuntime) -> Evaluator: ...

    def calendar(self, company: str) -> WorkingCalendar: ...

    def procedure_for_version(self, conn: Connection, version_id: int) -> CompiledProcedure: ...

    def holds(self, actor: Actor, rt: CompanyRuntime, procedure: str, role: str) -> bool: ...

    def number_schemes(self) -> Mapping[str, Any]: ...

    def change_context(self) -> dict[str, Any]: ...

    def listening(self) -> bool: ...


def role_assignees(proc: CompiledProcedure, step: str) -> list[Assignee]:
    """The role queue of a step: its roles (the customer is nobody's queue); none if final."""
    st = proc.step(step)
    return [] if st.final else [Assignee("role", r) for r in st.role if r != "customer"]


def guards_open(
    evaluator: Evaluator, proc: CompiledProcedure, facts: Mapping[str, Any]
) -> frozenset[str]:
    """``step.action`` names whose guard holds on ``facts``."""
    if not proc.guards:
        return frozenset()
    return evaluator.evaluate(proc.guard_ruleset, facts)


@dataclass
class _Draft:
    """One change being built: the case before (``row``; None when opening) and after."""

    proc: CompiledProcedure
    actor: Actor
    row: Any | None
    number: str
    change: Change
    first: dict[str, Any]
    from_step: str | None
    target: str
    action: str | None = None
    expected_version: int | None = None
    history: list[dict[str, Any]] | None = None  # the case's journal before this change
    fired: list[str] = field(default_factory=list)
    claims: list[int] = field(default_factory=list)  # uploads the case takes (attachments)
    signing: signatures.Signing | None = None  # the signature the action gives


class Pipeline:
    """Changes of cases of one company, in one write transaction (``conn``)."""

    def __init__(self, ctx: Context, conn: Connection, rt: CompanyRuntime) -> None:
        self.ctx, self.conn, self.rt = ctx, conn, rt

    # -- the three doors --------------------------------------------------------------
    def open(
        self, proc: CompiledProcedure, actor: Actor, data: Mapping[str, Any], *, depth: int = 0
    ) -> Committed:
        """Open a case of ``proc`` with the opening form ``data``."""
        opening = proc.pack.open
        if not actor.system and not any(
            self.ctx.holds(actor, self.rt, proc.key, r) for r in opening.role
        ):
            raise NotAllowed(
                f"opening a {proc.key} case needs one of the roles: {', '.join(opening.role)}",
                roles=list(opening.role),
            )
        values, errors = coerce_fields(
            proc, data, ordered(opening.ask, opening.require), opening.require
        )
        now = self.ctx.now()
        if opening.require_when:  # required only when a condition holds on the form
            facts = self._facts(proc, values, actor, now, event="opened", step=proc.pack.start)
            held = self.ctx.evaluator_for(self.rt).evaluate(proc.form_ruleset, facts)
            for name in opening.require_when:
                if (
                    required_id(OPENING, OPENING, name) in held
                    and values.get(name) is None
                    and name not in errors
                ):
                    errors[name] = "required"
        claims = self._uploads(proc, values, None, errors, actor)
        if errors:
            raise InvalidInput("the opening form has errors", errors=errors)
        number = self._next_number(proc, now)
        start = proc.pack.start
        change = self._change(proc, number, dict(values), start, role_assignees(proc, start), now)
        change.facts = self._facts(proc, change.fields, actor, now, event="opened", step=start)
        first = {"kind": "opened", "data": {"number": number, "fields": values, "step": start}}
        draft = _Draft(proc, actor, None, number, change, first, None, start, history=[])
        draft.claims = claims
        draft.fired = self._apply_rules(draft)
        return self._finish(draft, depth)

    def act(
        self,
        case_id: int,
        action: str,
        actor: Actor,
        data: Mapping[str, Any],
        expected_version: int,
    ) -> Committed:
        """Take ``action`` on a case whose version the actor saw as ``expected_version``."""
        row = self._row(case_id)
        proc = self.ctx.procedure_for_version(self.conn, row.procedure_version_id)
        act_def = proc.action(row.step, action) if row.status == "open" else None
        # the role first: someone who may not act learns nothing of the case's state
        roles = (
            proc.action_roles(row.step, action)
            if act_def is not None
            else sorted(
                {
                    r
                    for s in proc.pack.steps
                    if proc.action(s, action)
                    for r in proc.action_roles(s, action)
                }
            )
        )
        if not any(self.ctx.holds(actor, self.rt, proc.key, r) for r in roles):
            raise NotAllowed(f"'{action}' needs one of the roles: {', '.join(roles)}", roles=roles)
        if row.version != expected_version:
            raise Conflict(
                f"case {row.number} is at version {row.version}, not {expected_version}",
                current_version=row.version,
            )
        if act_def is None:
            raise ActionUnavailable(
                f"action '{action}' is not available at step '{row.step}'",
                step=row.step,
                current_version=row.version,
            )
        if (row.step, action) in proc.guards:
            facts = self._facts(
                proc, row.fields, actor, self.ctx.now(), event="guard", step=row.step
            )
            if f"{row.step}.{action}" not in guards_open(
                self.ctx.evaluator_for(self.rt), proc, facts
            ):
                raise ActionUnavailable(
                    f"action '{action}' is not available now (its guard is false)",
                    step=row.step,
                    current_version=row.version,
                )
        if act_def.not_by and not actor.system:
            self._four_eyes(proc, row, action, act_def.not_by, actor)
        values, errors = coerce_fields(
            proc, data, ordered(act_def.ask, act_def.require), [], row.fields
        )
        # upload ids become the files first: the case keeps (and conditions see) the file
        claims = self._uploads(proc, values, row.id, errors, actor)
        now = self.ctx.now()
        fields = {**row.fields, **values}
        required = list(act_def.require)
        branched = isinstance(act_def.to, list)
        held: frozenset[str] = frozenset()
        if branched or act_def.require_when:  # decided on the case as the form leaves it
            facts = self._facts(
                proc,
                fields,
                actor,
                now,
                event="action",
                step=row.step,
                action=action,
                from_step=row.step,
            )
            held = self.ctx.evaluator_for(self.rt).evaluate(proc.form_ruleset, facts)
            required += [
                n for n in act_def.require_when if required_id(row.step, action, n) in held
            ]
        for name in required:  # required: given now, or already on the case
            if name not in errors and values.get(name) is None and row.fields.get(name) is None:
                errors[name] = "required"
        if errors:
            raise InvalidInput("the form has errors", errors=errors)
        if isinstance(act_def.to, list):  # the first branch whose condition holds
            target = next(
                (
                    b.to
                    for i, b in enumerate(act_def.to)
                    if b.when is None or branch_id(row.step, action, i) in held
                ),
                row.step,
            )
        else:
            target = act_def.to or row.step
        signing = None
        if act_def.sign is not None:
            signing = self._signing(proc, row, act_def.sign, actor, fields)
            if not signing.complete:  # a countersignature moves on with its last signer
                target = row.step
        assignees = (
            [Assignee.parse(a) for a in row.assignees]
            if target == row.step
            else role_assignees(proc, target)
        )
        change = self._change(proc, row.number, fields, target, assignees, now)
        change.facts = self._facts(
            proc, fields, actor, now, event="action", step=target, action=action, from_step=row.step
        )
        first: dict[str, Any] = {
            "kind": "action",
            "action": action,
            "data": {"fields": values, "from_step": row.step, "to_step": target},
        }
        items = {
            name: changed
            for name in values
            if proc.pack.fields[name].type == "list"
            and (changed := item_changes(row.fields.get(name), values[name]))
        }
        if items:  # which items of a list the action added, updated or removed
            first["data"]["items"] = items
        draft = _Draft(
            proc, actor, row, row.number, change, first, row.step, target, action, expected_version
        )
        draft.claims, draft.signing = claims, signing
        draft.fired = self._apply_rules(draft)
        return self._finish(draft, 0)

    def system(
        self,
        case_id: int,
        entry: dict[str, Any],
        effects: Sequence[tuple[EffectType, Any]],
        rule_id: str,
        *,
        history: list[dict[str, Any]] | None = None,
    ) -> Committed:
        """Apply ``effects`` to a case as actor ``system`` (an SLA escalation, a timer, a
        schedule): ``entry`` is the change's first journal entry; ``history`` the case's
        journal if the caller already read it."""
        row = self._row(case_id)
        proc = self.ctx.procedure_for_version(self.conn, row.procedure_version_id)
        now = self.ctx.now()
        actor = Actor("system", self.rt.key, system=True)

        def fresh() -> Change:
            c = self._change(
                proc,
                row.number,
                dict(row.fields),
                row.step,
                [Assignee.parse(a) for a in row.assignees],
                now,
                status=row.status,
            )
            c.facts = self._facts(proc, row.fields, actor, now, event="timer", step=row.step)
            return c

        change = fresh()
        for etype, args in effects:
            etype.apply(change, args, rule_id)
        if change.refusal:  # a refusal cannot undo time: journal it, change nothing else
            refused = f"rule '{change.refusal[0]}' refused: {change.refusal[1]}"
            entry = {**entry, "data": {**entry.get("data", {}), "refused": refused}}
            change = fresh()
        draft = _Draft(
            proc,
            actor,
            row,
            row.number,
            change,
            entry,
            row.step,
            row.step,
            expected_version=row.version,
            history=history,
        )
        return self._finish(draft, 0)

    def note(self, case_id: int, proc: CompiledProcedure, entry: dict[str, Any]) -> list[int]:
        """Journal an entry about a case that changes nothing of it (``timer_skipped``)."""
        memory, company_id = self.ctx.time_memory, self.rt.id
        after_commit(self.conn, lambda: memory.forget(company_id, case_id))
        return chain.append(
            self.conn,
            self.rt.id,
            [entry],
            case_id=case_id,
            actor="system",
            pversion=proc.version,
            now=self.ctx.now(),
        )

    # -- the stages every change shares -------------------------------------------------
    def _finish(self, d: _Draft, depth: int) -> Committed:
        proc, change, row = d.proc, d.change, d.row
        now = change.now
        assert now is not None
        if change.refusal and not d.actor.system:
            raise Refused(change.refusal[1], rule=change.refusal[0])
        # assignees: a rule moved the case elsewhere and assigned nobody -> that step's queue
        if change.step != d.target and not any(j.kind == "assigned" for j in change.journal):
            change.assignees = role_assignees(proc, change.step)
        # the final step: closed, nobody assigned, a closed entry, no deadlines running
        was_closed = row is not None and row.status == "closed"
        final = proc.step(change.step).final
        if final:
            change.assignees = []
        status = "closed" if final else (row.status if row is not None else "open")
        closed_at = (
            now if final and not was_closed else (row.closed_at if row is not None else None)
        )
        entries = [d.first] + [
            {
                "kind": j.kind,
                "action": d.action,
                "rule_id": j.rule_id,
                "data": j.data,
                "facts": j.facts,
            }
            for j in change.journal
        ]
        voids: list[tuple[Any, list[str]]] = []
        if (
            row is not None
            and proc.pack.signatures
            and change.fields != row.fields
            and signatures.touched(proc.pack.signatures, row.fields, change.fields)
        ):
            held = signatures.valid(self.conn, self.rt.id, row.id)
            voids = signatures.voided(proc.pack.signatures, held, row.fields, change.fields)
            entries += [
                {
                    "kind": "signature_void",
                    "data": {
                        "signature": sig.name,
                        "signed_by": sig.username,
                        "role": sig.role,
                        "signed_seq": sig.journal_seq,
                        "changed": changed,
                    },
                }
                for sig, changed in voids
            ]
        signed_hash, signed_at = None, None
        if d.signing is not None:
            sdef = proc.pack.signatures[d.signing.name]
            signed_hash = signatures.fields_hash(sdef.covers, change.fields)
            signed_at = len(entries)
            entries.append(
                {
                    "kind": "signed",
                    "action": d.action,
                    "data": {
                        "signature": d.signing.name,
                        "role": d.signing.role,
                        "covers": list(sdef.covers),
                        "hash": signed_hash,
                        "complete": d.signing.complete,
                    },
                }
            )
        if final and not was_closed:
            entries.append({"kind": "closed", "data": {"step": change.step}})
        # deadlines: the journal so far plus what this change adds
        plan = None
        remembered = None  # what the change that wrote the version read left (TimeMemory)
        if deadlines.needs_time(proc):
            if row is not None:
                remembered = self.ctx.time_memory.get(self.rt.id, row.id, row.version)
            if d.history is None:
                assert row is not None
                d.history = (
                    remembered.history
                    if remembered is not None
                    else chain.case_history(self.conn, self.rt.id, row.id)
                )
            history = d.history + [
                {"at": now, "kind": e["kind"], "action": e.get("action"), "data": e.get("data", {})}
                for e in entries
            ]
            plan = deadlines.plan(proc, history, self.ctx.calendar(self.rt.key), now)
        next_due = (
            plan.next_due if plan is not None else (row.next_due_at if row is not None else None)
        )
        assignees = [a.to_json() for a in change.assignees]
        version = 1 if row is None else row.version + 1
        values = {
            "fields": change.fields,
            "step": change.step,
            "status": status,
            "assignees": assignees,
            "version": version,
            "updated_at": now,
            "closed_at": closed_at,
            "next_due_at": next_due,
        }
        if row is None:
            case_id = _INS_CASE.first(
                self.conn,
                {
                    **values,
                    "company_id": self.rt.id,
                    "procedure_version_id": self.rt.version_ids[proc.key],
                    "procedure": proc.key,
                    "number": d.number,
                    "created_by": d.actor.username,
                    "created_at": now,
                },
            ).id
            created_by, created_at = d.actor.username, now
        else:
            case_id = row.id
            changed = _UPD_CASE.execute(
                self.conn,
                {
                    "cid": case_id,
                    "co": self.rt.id,
                    "expected": row.version,
                    "fields": change.fields,
                    "step": change.step,
                    "status": status,
                    "assignees": assignees,
                    "new_version": version,
                    "now": now,
                    "closed_at": closed_at,
                    "next_due": next_due,
                },
            )
            if changed != 1:  # someone committed between our read and this write
                raise Conflict(f"case {row.number} changed while acting", current_version=None)
            created_by, created_at = row.created_by, row.created_at
        if row is None or change.fields != row.fields:  # the text-search document
            search.index(
                self.conn,
                case_id,
                self.rt.id,
                d.number,
                change.fields,
                before=None if row is None else row.fields,
            )
        # the inbox queues (case_assignee) follow the assignees and the next due instant
        if row is None or assignees != list(row.assignees):
            loads.move(self.conn, self.rt.id, () if row is None else row.assignees, assignees)
            if row is not None:
                _DEL_ASSIGNEES.execute(self.conn, {"cid": case_id})
            if change.assignees:
                due = next_due or t.NO_DUE
                _INS_ASSIGNEES.execute_many(
                    self.conn,
                    [
                        {
                            "case_id": case_id,
                            "kind": a.kind,
                            "ref": a.ref,
                            "company_id": self.rt.id,
                            "procedure": proc.key,
                            "due_at": due,
                            "created_at": created_at,
                        }
                        for a in change.assignees
                    ],
                )
        elif assignees and next_due != row.next_due_at:
            _UPD_ASSIGNEES_DUE.execute(self.conn, {"cid": case_id, "due": next_due or t.NO_DUE})
        seqs = chain.append(
            self.conn,
            self.rt.id,
            entries,
            case_id=case_id,
            actor=d.actor.username,
            pversion=proc.version,
            now=now,
            state=chain.state_digest(change.fields, change.step, status, assignees, version),
        )
        attachments.claim(self.conn, self.rt.id, case_id, d.claims)
        if voids or d.signing is not None:
            signatures.write(
                self.conn,
                self.rt.id,
                case_id,
                now,
                d.signing,
                signed_hash,
                None if signed_at is None else seqs[signed_at],
                d.actor.username,
                voids,
            )
        if change.outbox:
            _INS_OUTBOX.execute_many(
                self.conn,
                [
                    {
                        "company_id": self.rt.id,
                        "case_id": case_id,
                        "journal_seq": seqs[0],
                        "channel": msg.channel,
                        "recipient": msg.recipient,
                        "template": msg.template,
                        "payload": msg.payload,
                        "idempotency_key": f"{self.rt.id}:{seqs[0]}:{i}",
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                    for i, msg in enumerate(change.outbox)
                ],
            )
        self._queue_events(d, case_id, now)
        linked = self._open_linked(d, case_id, depth)
        if final and not was_closed and self.rt.waits:  # a parent waiting for its cases
            self._parents_waiting(case_id, depth)
        if plan is not None:
            wanted = deadlines.planned(case_id, plan)
            before = None if remembered is None else remembered.timers
            if before != wanted:  # else the timers the version read scheduled stand
                deadlines.schedule(self.conn, self.rt.id, case_id, wanted, before)
            if not d.change.linked:  # (a linked case's entries come after ``history``)
                state = deadlines.TimeState(version, history, wanted)
                memory, company_id = self.ctx.time_memory, self.rt.id
                after_commit(self.conn, lambda: memory.put(company_id, case_id, state))
            schedules.refresh_case(
                self.conn,
                self.rt,
                proc,
                case_id,
                history,
                plan.closed,
                now,
                self.ctx.calendar(self.rt.key),
            )
        written = {
            "id": case_id,
            "company_id": self.rt.id,
            "procedure": proc.key,
            "number": d.number,
            "created_by": created_by,
            "created_at": created_at,
            "procedure_version_id": (
                self.rt.version_ids[proc.key] if row is None else row.procedure_version_id
            ),
            **values,
        }
        return Committed(case_id, d.number, proc, written, d.fired, seqs, linked)

    # -- helpers ----------------------------------------------------------------------
    def _four_eyes(
        self, proc: CompiledProcedure, row: Any, action: str, not_by: Sequence[str], actor: Actor
    ) -> None:
        """``not_by:``: refuse an actor who is named in one of the person fields, or who
        took one of the earlier actions on this case."""
        who = actor.username
        for name in not_by:
            if name in proc.pack.fields and row.fields.get(name) == who:
                label = proc.pack.fields[name].label.text()
                raise NotAllowed(
                    f"'{action}' needs someone other than {who}, who is the case's "
                    f"{label} ({name}): four-eyes",
                    not_by=name,
                )
        actions = [n for n in not_by if n not in proc.pack.fields]
        if actions:
            for name, takers in chain.action_takers(self.conn, self.rt.id, row.id, actions).items():
                if who in takers:
                    raise NotAllowed(
                        f"'{action}' needs someone other than {who}, who did '{name}' on "
                        "this case: four-eyes",
                        not_by=name,
                    )

    def _uploads(
        self,
        proc: CompiledProcedure,
        values: dict[str, Any],
        case_id: int | None,
        errors: dict[str, str],
        actor: Actor,
    ) -> list[int]:
        """Attachment fields: upload ids become the uploads' hash, name, size and type;
        ``actor`` may claim only the uploads they made (the engine's own changes, any)."""
        if not proc.attachment_fields or proc.attachment_fields.isdisjoint(values):
            return []
        uploader = None if actor.system else actor.username
        return attachments.resolve(self.conn, self.rt.id, proc, values, case_id, errors, uploader)

    def _signing(
        self,
        proc: CompiledProcedure,
        row: Any,
        name: str,
        actor: Actor,
        fields: Mapping[str, Any],
    ) -> signatures.Signing:
        """The signature ``actor`` gives with this action (NotAllowed when they cannot):
        signatures this very change voids count for nothing."""
        held = signatures.valid(self.conn, self.rt.id, row.id)
        gone = {id(s) for s, _ in signatures.voided(proc.pack.signatures, held, row.fields, fields)}
        return signatures.plan(
            proc.pack.signatures[name],
            name,
            [s for s in held if id(s) not in gone],
            actor.username,
            lambda role: actor.system or self.ctx.holds(actor, self.rt, proc.key, role),
        )

    def _facts(
        self,
        proc: CompiledProcedure,
        fields: Mapping[str, Any],
        actor: Actor,
        now: dt.datetime,
        **system: Any,
    ) -> dict[str, Any]:
        """The rule facts of a change: derived values see the moment, calendar and actor."""
        if not proc.derived.exprs:  # the common case: nothing to compute
            return proc.facts(fields, **system)
        asked = proc.derived.actor_roles
        if asked and not actor.system:  # roles held through departments and mappings too
            held = frozenset(r for r in asked if self.ctx.holds(actor, self.rt, proc.key, r))
            actor = dataclasses.replace(actor, roles=held)
        return proc.facts(
            fields, **system, now=now, calendar=self.ctx.calendar(self.rt.key), actor=actor
        )

    def _row(self, case_id: int) -> Any:
        row = SEL_CASE.first(self.conn, {"cid": case_id, "co": self.rt.id})
        if row is None:  # another company's case is "not found" too: never reveal it exists
            raise NotFound(f"case {case_id} not found")
        return row

    def _change(
        self,
        proc: CompiledProcedure,
        number: str,
        fields: dict[str, Any],
        step: str,
        assignees: list[Assignee],
        now: dt.datetime,
        status: str = "open",
    ) -> Change:
        change = Change(proc, number, fields, step, assignees, status, now=now)
        change.context = {
            **self.ctx.change_context(),
            "conn": self.conn,
            "company_id": self.rt.id,
            "company": self.rt.definition,
        }
        return change

    def _apply_rules(self, d: _Draft) -> list[str]:
        fired = self.ctx.evaluator_for(self.rt).evaluate(d.proc.ruleset, d.change.facts)
        order = []
        for rule in d.proc.rules:  # declared order, whatever order the engine fired them in
            if rule.id not in fired:
                continue
            order.append(rule.id)
            for etype, args in rule.effects:
                etype.apply(d.change, args, rule.id)
        return order

    def _next_number(self, proc: CompiledProcedure, now: dt.datetime) -> str:
        settings = self.rt.definition.procedures.get(proc.key) or ProcedureSettings()
        request = numbering.NumberRequest(
            self.conn, self.rt.id, self.rt.definition, proc.key, settings.numbering, now
        )
        return numbering.next_number(request, settings.number_scheme, self.ctx.number_schemes())

    def _queue_events(self, d: _Draft, case_id: int, now: dt.datetime) -> None:
        if not self.ctx.listening():  # nobody would hear them: do not build them
            return
        change = d.change

        def event(kind: str) -> CaseEvent:
            return CaseEvent(
                kind,
                self.rt.key,
                case_id,
                d.number,
                d.proc.key,
                change.step,
                d.actor.username,
                now,
                from_step=d.from_step,
                action=d.action,
                fields=dict(change.fields),
            )

        events = self.ctx.events
        if d.row is None:
            events.add(event("opened"))
        if d.action is not None:
            events.add(event("action_done"))
        if d.row is None or change.step != d.from_step:
            events.add(event("step_entered"))
            if d.proc.step(change.step).final:
                events.add(event("closed"))

    def _open_linked(self, d: _Draft, case_id: int, depth: int) -> list[int]:
        out = []
        for req in d.change.linked:
            if depth >= MAX_LINK_DEPTH:
                raise Refused(
                    f"rule '{req.rule_id}' would open linked cases more than {MAX_LINK_DEPTH} deep",
                    rule=req.rule_id,
                )
            target = self.rt.procedures.get(req.procedure)
            if target is None:
                raise Refused(
                    f"rule '{req.rule_id}' opens a '{req.procedure}' case, which is not enabled",
                    rule=req.rule_id,
                )
            given = _fresh_items(target, {k: v for k, v in req.fields.items() if v is not None})
            a = d.actor
            if target.attachment_fields & given.keys():  # files copied from this case
                attachments.copy_for(
                    self.conn, self.rt.id, case_id, target, given, a.username, self.ctx.now()
                )
            system = Actor(a.username, self.rt.key, a.departments, a.roles, system=True)
            try:
                child = self._open_unchecked(target, system, given, depth + 1)
            except InvalidInput as exc:
                raise Refused(
                    f"rule '{req.rule_id}' gives the linked case bad fields: "
                    f"{exc.details.get('errors')}",
                    rule=req.rule_id,
                ) from exc
            self.conn.execute(
                _INS_LINK,
                {
                    "company_id": self.rt.id,
                    "from_case_id": case_id,
                    "to_case_id": child.case_id,
                    "link": req.link,
                    "rule_id": req.rule_id,
                    "created_at": d.change.now,
                },
            )
            entry = {
                "kind": "linked",
                "rule_id": req.rule_id,
                "data": {"link": req.link, "case": child.case_id, "procedure": req.procedure},
            }
            chain.append(
                self.conn,
                self.rt.id,
                [entry],
                case_id=case_id,
                actor=a.username,
                pversion=d.proc.version,
                now=self.ctx.now(),
            )
            out.append(child.case_id)
        return out

    def _parents_waiting(self, case_id: int, depth: int) -> None:
        """This case just closed: a case that opened it and waits at a ``wait_for:`` step
        for its link moves on once none of those cases is open any more."""
        for parent_id, link in _SEL_PARENTS.all(self.conn, {"co": self.rt.id, "cid": case_id}):
            parent = self._row(parent_id)
            proc = self.ctx.procedure_for_version(self.conn, parent.procedure_version_id)
            wait = proc.step(parent.step).wait_for if parent.status == "open" else None
            if wait is None or wait.link != link:
                continue
            still_open = self.conn.execute(
                _COUNT_OPEN_CHILDREN, {"co": self.rt.id, "pid": parent_id, "link": link}
            ).scalar()
            if still_open or depth >= MAX_LINK_DEPTH:
                continue
            entry = {"kind": "linked_closed", "data": {"link": link, "last": case_id}}
            self.system(parent_id, entry, [(WAIT_MOVE, MoveArgs(wait.to))], f"wait_for.{link}")

    def _open_unchecked(
        self, proc: CompiledProcedure, actor: Actor, values: Mapping[str, Any], depth: int
    ) -> Committed:
        """Open a case whose fields a rule or schedule gave: no opening form, no role check."""
        from_form, errors = coerce_fields(proc, values, list(proc.pack.fields), [])
        claims = self._uploads(proc, from_form, None, errors, actor)
        if errors:
            raise InvalidInput("the fields have errors", errors=errors)
        now = self.ctx.now()
        number = self._next_number(proc, now)
        start = proc.pack.start
        change = self._change(
            proc, number, dict(from_form), start, role_assignees(proc, start), now
        )
        change.facts = self._facts(proc, change.fields, actor, now, event="opened", step=start)
        first = {"kind": "opened", "data": {"number": number, "fields": from_form, "step": start}}
        draft = _Draft(proc, actor, None, number, change, first, None, start, history=[])
        draft.claims = claims
        draft.fired = self._apply_rules(draft)
        return self._finish(draft, depth)

    def open_system(
        self, proc: CompiledProcedure, values: Mapping[str, Any], actor: Actor | None = None
    ) -> Committed:
        """Open a case as ``system`` with fields a schedule gives (no form, no role check)."""
        return self._open_unchecked(
            proc, actor or Actor("system", self.rt.key, system=True), values, 0
        )
