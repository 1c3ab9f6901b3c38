"""The case routes under ``/api/v1``. Thin: each one asks the case service and shapes the answer.

Sync handlers run in Litestar's thread pool (``sync_to_thread=True``): the service does
blocking database work and owns every transaction.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody, PathParameter, QueryParameter

from api.models import (
    ActIn,
    ActionOut,
    ActOut,
    CaseList,
    CaseOut,
    DeadlineOut,
    JournalEntry,
    OpenCase,
    Pause,
    ProcedureOut,
    ReportInfo,
    ReportOut,
    RoleOut,
    StepOut,
    action_out,
    case_out,
    form,
    text,
)
from api.problems import errors
from api.times import EXAMPLES, iso_facts, query_time
from core.cases.queries import (
    CaseFilter,
    CasePage,
    can_read,
    inbox,
    list_cases,
    readable_procedures,
    require_read,
)
from core.cases.reports import available, run_report
from core.cases.service import ActionView, Actor, CaseService, CaseView
from core.errors import NotAllowed, NotFound
from core.spec.forms import ordered as _ordered
from core.spec.procedures import CompiledProcedure

Svc = NamedDependency[CaseService]
Me = NamedDependency[Actor]

# the bounds once more as schema_extra: Litestar writes ge/le as floats (4.6e+18)
CaseId = Annotated[
    int,
    PathParameter(
        ge=1,
        le=2**62,
        description="the case id",
        schema_extra={"minimum": 1, "maximum": 2**62},
    ),
]
Limit = Annotated[int, QueryParameter(ge=1, le=200, description="page size (1–200)")]
Offset = Annotated[int, QueryParameter(ge=0, le=2**31, description="items to skip")]
After = Annotated[
    str | None,
    QueryParameter(
        max_length=200,
        description="the page after this one: the `next` of the page before (keyset pagination)",
    ),
]
Before = Annotated[
    str | None,
    QueryParameter(
        max_length=200,
        description="the page before this one: the `previous` of the page after",
    ),
]


def provide_actor(request: Request[Any, Any, Any], svc: Svc) -> Actor:
    """The signed-in person in the request's company, with their departments and roles."""
    principal = request.user
    if principal.roles is not None and principal.departments is not None:
        # the membership came with the credential's read: no second read per request
        return Actor(principal.username, principal.company, principal.departments, principal.roles)
    return svc.actor(principal.company, principal.username)


def _case(svc: Svc, actor: Me, view: CaseView) -> CaseOut:
    require_read(svc, actor, view)
    return case_out(view, svc.pinned(view))


def _page(svc: Svc, page: CasePage) -> CaseList:
    return CaseList(
        [case_out(v, svc.pinned(v)) for v in page.items],
        page.total,
        page.limit,
        page.offset,
        page.total_exact,
        page.next,
        page.previous,
    )


def _describe(svc: Svc, actor: Me, proc: CompiledProcedure) -> ProcedureOut:
    rt = svc.company(actor.company)
    pack = proc.pack
    roles = [
        RoleOut(k, text(r.label), svc.holds(actor, rt, proc.key, k)) for k, r in pack.roles.items()
    ]
    steps = []
    for key, st in pack.steps.items():
        actions = [
            action_out(
                proc,
                ActionView(
                    name,
                    a.label.model_dump(by_alias=True),
                    a.fixed_to,
                    _ordered(a.ask, a.require),
                    list(a.require),
                ),
            )
            for name, a in st.actions.items()
        ]
        steps.append(StepOut(key, text(st.label), list(st.role), st.final, actions))
    return ProcedureOut(
        proc.key,
        text(pack.title),
        proc.version,
        pack.start,
        roles,
        list(pack.open.role),
        form(proc, _ordered(pack.open.ask, pack.open.require), list(pack.open.require)),
        steps,
    )


def _tz(svc: Svc, actor: Me) -> zoneinfo.ZoneInfo:
    """The time zone of the actor's company: naive query times and answers are in it."""
    return zoneinfo.ZoneInfo(svc.company(actor.company).definition.timezone)


def _when(description: str) -> Any:
    return QueryParameter(
        max_length=64,
        description=f"{description}: an ISO 8601 date or time ({EXAMPLES}); without an "
        "offset, in the company's time zone",
    )


class ProcedureController(Controller):
    """The procedures of my company."""

    path = "/api/v1/procedures"
    tags = ["procedures"]
    dependencies = {"actor": Provide(provide_actor, sync_to_thread=True)}

    @get("/", operation_id="listProcedures", responses=errors(403), sync_to_thread=True)
    def list_procedures(self, svc: Svc, actor: Me) -> list[ProcedureOut]:
        """The enabled procedures of my company in which I hold a role.

        Each with its steps, roles and every form.
        """
        rt = svc.company(actor.company)
        return [
            _describe(svc, actor, rt.procedures[k]) for k in readable_procedures(svc, rt, actor)
        ]

    @get("/{key:str}", operation_id="getProcedure", responses=errors(403, 404), sync_to_thread=True)
    def get_procedure(self, svc: Svc, actor: Me, key: FromPath[str]) -> ProcedureOut:
        """One procedure (its current version): steps, roles, and the form of each action."""
        rt = svc.company(actor.company)
        proc = rt.procedures.get(key)
        if proc is None:
            raise NotFound(f"procedure '{key}' is not enabled for this company")
        if not can_read(svc, rt, actor, proc):
            raise NotAllowed(
                f"procedure '{key}' needs one of its roles", roles=list(proc.pack.roles)
            )
        return _describe(svc, actor, proc)


class CaseController(Controller):
    """Opening cases, reading them and acting on them."""

    path = "/api/v1/cases"
    tags = ["cases"]
    dependencies = {"actor": Provide(provide_actor, sync_to_thread=True)}

    @post("/", operation_id="openCase", responses=errors(403, 404, 422, 503), sync_to_thread=True)
    def open_case(self, svc: Svc, actor: Me, data: JSONBody[OpenCase]) -> ActOut:
        """Open a case with the opening form's fields. 201 with the case as the rules left it."""
        res = svc.open_case(actor.company, data.procedure, actor, data.fields)
        return ActOut(case_out(res.case, svc.pinned(res.case)), res.fired, res.linked)

    @get("/", operation_id="listCases", responses=errors(403, 422), sync_to_thread=True)
    def list_cases(
        self,
        svc: Svc,
        actor: Me,
        procedure: FromQuery[str | None] = None,
        step: FromQuery[str | None] = None,
        status: Annotated[str | None, QueryParameter(pattern="^(open|closed)$")] = None,
        assignee: Annotated[
            str | None, QueryParameter(description="person:NAME, role:NAME or department:NAME")
        ] = None,
        mine: FromQuery[bool] = False,
        q: Annotated[
            str | None,
            QueryParameter(max_length=200, description="text in the number or any field"),
        ] = None,
        created_from: Annotated[str | None, _when("created at or after")] = None,
        created_to: Annotated[
            str | None, _when("created before (a date: up to the end of that day)")
        ] = None,
        updated_from: Annotated[str | None, _when("last changed at or after")] = None,
        updated_to: Annotated[
            str | None, _when("last changed before (a date: up to the end of that day)")
        ] = None,
        limit: Limit = 50,
        offset: Offset = 0,
        after: After = None,
        before: Before = None,
    ) -> CaseList:
        """Cases I may read, newest first; every filter optional; paginated with
        `after` = the page's `next`, back with `before` = its `previous` (or limit/offset)."""
        tz = _tz(svc, actor)
        flt = CaseFilter(
            procedure,
            step,
            status,
            assignee,
            mine,
            q,
            query_time(created_from, "created_from", tz),
            query_time(created_to, "created_to", tz, end=True),
            query_time(updated_from, "updated_from", tz),
            query_time(updated_to, "updated_to", tz, end=True),
            limit,
            offset,
            after,
            before,
        )
        return _page(svc, list_cases(svc, actor, flt))

    @get(
        "/{case_id:int}",
        operation_id="getCase",
        responses=errors(403, 404, 422),
        sync_to_thread=True,
    )
    def get_case(self, svc: Svc, actor: Me, case_id: CaseId) -> CaseOut:
        """One case: fields, step, assignees, deadlines and the version to act on."""
        return _case(svc, actor, svc.get_case(actor.company, case_id))

    @get(
        "/{case_id:int}/actions",
        operation_id="listCaseActions",
        responses=errors(403, 404, 422, 503),
        sync_to_thread=True,
    )
    def actions(self, svc: Svc, actor: Me, case_id: CaseId) -> list[ActionOut]:
        """What I may do on this case now, each with its form."""
        view = svc.get_case(actor.company, case_id)
        require_read(svc, actor, view)
        proc = svc.pinned(view)
        return [action_out(proc, a) for a in svc.available_actions(actor.company, case_id, actor)]

    @post(
        "/{case_id:int}/actions/{action:str}",
        operation_id="takeAction",
        responses=errors(403, 404, 409, 422, 503),
        status_code=200,
        sync_to_thread=True,
    )
    def act(
        self, svc: Svc, actor: Me, case_id: CaseId, action: FromPath[str], data: JSONBody[ActIn]
    ) -> ActOut:
        """Take an action with its form's fields.

        ``expected_version`` guards against lost updates.
        """
        res = svc.act(actor.company, case_id, action, actor, data.fields, data.expected_version)
        return ActOut(case_out(res.case, svc.pinned(res.case)), res.fired, res.linked)

    @get(
        "/{case_id:int}/journal",
        operation_id="getCaseJournal",
        responses=errors(403, 404, 422),
        sync_to_thread=True,
    )
    def journal(self, svc: Svc, actor: Me, case_id: CaseId) -> list[JournalEntry]:
        """Who did what, when and why: every entry of the case, with the rule that made it."""
        view = svc.get_case(actor.company, case_id)
        require_read(svc, actor, view)
        proc, tz = svc.pinned(view), _tz(svc, actor)
        return [
            JournalEntry(
                e["seq"],
                e["at"],
                e["actor"],
                e["kind"],
                e["action"],
                e["rule_id"],
                e["procedure_version"],
                e["data"] or {},
                iso_facts(proc, e["facts"], tz),
            )
            for e in svc.journal(actor.company, case_id)
        ]

    @get(
        "/{case_id:int}/deadlines",
        operation_id="getCaseDeadlines",
        responses=errors(403, 404, 422),
        sync_to_thread=True,
    )
    def deadlines(self, svc: Svc, actor: Me, case_id: CaseId) -> list[DeadlineOut]:
        """The case's deadlines (SLAs), each explained: start, target, due, pauses, days skipped."""
        require_read(svc, actor, svc.get_case(actor.company, case_id))
        locale = svc.company(actor.company).definition.locale
        tz = _tz(svc, actor)

        def at(moment: dt.datetime | None) -> dt.datetime | None:
            return moment.astimezone(tz) if moment else None  # one form: the company's offset

        out = []
        for d in svc.deadlines(actor.company, case_id):
            x = d.as_dict(locale, tz)
            out.append(
                DeadlineOut(
                    x["id"],
                    x["label"],
                    x["source"],
                    x["state"],
                    at(d.started_at),
                    x["start_reason"],
                    x["target"],
                    x["target_reason"],
                    at(d.due_at),
                    at(d.warn_at),
                    at(d.stopped_at),
                    x["stop_reason"],
                    [Pause(a.astimezone(tz), at(b)) for a, b in d.pauses],
                    x["counted_seconds"],
                    x["measure"],
                    x["extension"],
                    x["skipped_days"],
                    x["counted_days"],
                    x["warnings"],
                )
            )
        return out


@get(
    "/api/v1/inbox",
    operation_id="getInbox",
    responses=errors(422),
    tags=["cases"],
    sync_to_thread=True,
    dependencies={"actor": Provide(provide_actor, sync_to_thread=True)},
)
def get_inbox(
    svc: Svc,
    actor: Me,
    limit: Limit = 50,
    offset: Offset = 0,
    after: After = None,
    before: Before = None,
) -> CaseList:
    """Open cases waiting on me, or on a role or department I hold: nearest deadline first, then
    longest waiting; the next page from `after` = the page's `next`, the one before from
    `before` = its `previous`."""
    return _page(svc, inbox(svc, actor, limit=limit, offset=offset, after=after, before=before))


@get(
    "/api/v1/reports",
    operation_id="listReports",
    responses=errors(),
    tags=["reports"],
    sync_to_thread=True,
    dependencies={"actor": Provide(provide_actor, sync_to_thread=True)},
)
def list_reports(svc: Svc, actor: Me) -> list[ReportInfo]:
    """The reports my company may run: the installed plugins' (``kefu_reports``) and
    those its procedures declare (``reports:``, named ``<procedure>.<report>``)."""
    reg = svc.catalog.extensions
    return [
        ReportInfo(
            name,
            r.title,
            reg.plugin_of("report", name) or "",
            getattr(r, "procedure", None),
        )
        for name, r in available(svc, actor.company).items()
    ]


@get(
    "/api/v1/reports/{name:str}",
    operation_id="runReport",
    responses=errors(404),
    tags=["reports"],
    sync_to_thread=True,
    dependencies={"actor": Provide(provide_actor, sync_to_thread=True)},
)
def get_report(
    request: Request[Any, Any, Any], svc: Svc, actor: Me, name: FromPath[str]
) -> ReportOut:
    """Run a report for my company; query parameters are the report's parameters."""
    params = {k: str(v) for k, v in request.query_params.items()}
    result = run_report(svc, actor.company, name, params)
    return ReportOut(name, result.columns, result.rows, result.notes)


@get("/health", operation_id="health", tags=["meta"], exclude_from_auth=True, sync_to_thread=False)
def health() -> dict[str, str]:
    """Liveness: 200 while the process serves requests."""
    return {"status": "ok"}


ROUTES: list[Any] = [
    ProcedureController,
    CaseController,
    get_inbox,
    list_reports,
    get_report,
    health,
]
