"""The staff pages under ``/web``: sign-in, inbox, case list, opening a case, the case page
with its action forms, procedures with their diagram, and the dispatch board.

Every page is drawn on the server and works without JavaScript. Each change goes through
the same case service as the API (``svc.open_case`` / ``svc.act``), whose validators
answer field by field; a page shows those answers beside the fields, and a stale version
(409) redraws the case as it is now with what changed and what the user typed.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, Router, get, post
from litestar.datastructures import Cookie
from litestar.params import FromPath, FromQuery
from litestar.response import Template

from api.auth import (
    AuthSettings,
    Credential,
    LoginIn,
    PasswordPool,
    Principal,
    Unauthenticated,
    login,
)
from api.documents import MAX_UPLOAD
from api.routes import provide_actor
from api.web import i18n
from api.web.context import (
    Look,
    PageSettings,
    blocking,
    csrf_ok,
    first,
    form_of,
    login_url,
    look,
    page,
    safe_next,
    see_other,
)
from api.web.security import HEADERS
from api.web.submit import EXPIRED, submit
from api.web.uploads import HAD, KEEP, NEW, files_of, posted, takes_files
from api.web.widgets import PREFIX, Row, Typed, table_rows, widget_for
from core.cases import attachments, charts, signatures
from core.cases.queries import (
    CaseFilter,
    CasePage,
    can_read,
    inbox,
    linked_cases,
    list_cases,
    readable_procedures,
    require_read,
    workload,
)
from core.cases.reports import available, run_report
from core.cases.service import Actor, CaseService, CaseView
from core.errors import Conflict, InvalidInput, KefuError, NotAllowed, NotFound, Refused
from core.spec.diagram import procedure_svg
from core.spec.forms import ordered
from core.storage import schema as t

PAGE_SIZE = 25
#: a form's own inputs, not values: never listed as what someone typed
INTERNAL = ("._shown", "._had", ".new", ".keep", ".id", ".remove")
TABS = ("roles", "mine", "overdue")


@dataclass
class Staff:
    """The signed-in person on a page: the actor, the credential, how to draw for them."""

    actor: Actor
    principal: Principal
    look: Look
    company_name: str


def build_pages(svc: CaseService, auth: AuthSettings, pool: PasswordPool) -> Router:
    """The ``/web`` router for ``svc`` (sessions as the API's ``auth`` settings; passwords
    checked in the API's ``pool``)."""
    settings = PageSettings.of(auth)

    def staff(request: Request[Any, Any, Any]) -> Staff:
        actor = provide_actor(request, svc)
        rt = svc.company(actor.company)
        c = rt.definition
        lk = look(request, c.locale, c.timezone, svc.clock.now())
        return Staff(actor, request.user, lk, i18n.label(c.name, lk.locale))

    def render(
        request: Request[Any, Any, Any],
        me: Staff | None,
        name: str,
        status: int = 200,
        cookies: list[Cookie] | None = None,
        **context: Any,
    ) -> Template:
        lk = me.look if me else _default_look(request)
        return page(request, settings, name, lk, status, cookies, me=me, **context)

    def _default_look(request: Request[Any, Any, Any]) -> Look:
        first_company = next(iter(svc.companies.values()), None)
        d = first_company.definition if first_company else None
        return look(
            request,
            d.locale if d else "zh-CN",
            d.timezone if d else "Asia/Shanghai",
            svc.clock.now(),
        )

    # -- errors: a page, never a problem document or a traceback (the app's handlers draw
    # every other error under /web: api.web.site.page_errors) ----------------------------
    def on_unauthenticated(request: Request[Any, Any, Any], exc: Unauthenticated) -> Response[Any]:
        if request.method == "GET":
            return see_other(login_url(request))
        return render(request, None, "login.html", status=401, error=exc.message, next="")

    # -- signing in and out ------------------------------------------------------------
    @get("/login", exclude_from_auth=True, sync_to_thread=False)
    def login_page(request: Request[Any, Any, Any], next: FromQuery[str | None] = None) -> Template:
        return render(request, None, "login.html", next=safe_next(next))

    @post("/login", exclude_from_auth=True, status_code=303)
    async def login_post(request: Request[Any, Any, Any]) -> Response[Any]:
        form = await form_of(request)
        target = safe_next(first(form, "next"))
        if not csrf_ok(request, settings, form):
            return render(request, None, "login.html", status=403, expired=True, next=target)
        username = (first(form, "username") or "").strip()
        password = first(form, "password") or ""
        company = (first(form, "company") or "").strip() or None
        if (
            not username
            or not password
            or len(username) > 64
            or len(password) > 1024
            or "\x00" in username + password + (company or "")
        ):
            return render(
                request,
                None,
                "login.html",
                status=422,
                error="wrong username or password",
                username=username[:64],
                next=target,
            )
        try:
            _, raw = await login(
                svc,
                auth,
                pool,
                LoginIn(username, password, company),
                request.cookies.get(settings.session_cookie),
                settings.client(request),
            )
        except KefuError as exc:
            return render(
                request,
                None,
                "login.html",
                status=exc.status,
                error=exc.message,
                username=username,
                companies=exc.details.get("errors", {}).get("company"),
                next=target,
            )
        cookie = Cookie(
            key=settings.session_cookie,
            value=raw,
            path="/",
            max_age=int(auth.absolute_timeout.total_seconds()),
            httponly=True,
            samesite="lax",
            secure=settings.cookie_secure,
        )
        return see_other(target, cookies=[cookie])

    @post("/logout", status_code=303)
    async def logout_post(request: Request[Principal, Credential, Any]) -> Response[Any]:
        form = await form_of(request)
        if not csrf_ok(request, settings, form):
            return render(
                request,
                None,
                "error.html",
                status=403,
                message=EXPIRED,
            )
        cred = request.auth
        if cred.kind == "session":
            await blocking(_end_session, svc, cred.ref)
        gone = Cookie(key=settings.session_cookie, value="", path="/", max_age=0)
        return see_other("/web/login", cookies=[gone])

    @get("/lang/{code:str}", exclude_from_auth=True, sync_to_thread=False)
    def set_language(code: FromPath[str], next: FromQuery[str | None] = None) -> Response[Any]:
        cookies = []
        if code in i18n.LOCALES:
            cookies.append(Cookie(key=i18n.LANG_COOKIE, value=code, path="/", max_age=365 * 86400))
        target = next if next and next.startswith("/portal/") else safe_next(next)
        return see_other(target, cookies=cookies)

    # -- inbox and lists -----------------------------------------------------------------
    @get(["/", ""], sync_to_thread=False)
    def home() -> Response[Any]:
        return see_other("/web/inbox")

    @get("/inbox", sync_to_thread=True)
    def inbox_page(
        request: Request[Any, Any, Any],
        tab: FromQuery[str] = "roles",
    ) -> Template:
        me = staff(request)
        tab = tab if tab in TABS else "roles"
        at = _Position.of(request)

        def page(at: _Position) -> tuple[list[CaseView], CasePage]:
            if tab == "mine":
                flt = CaseFilter(
                    status="open",
                    assignee=f"person:{me.actor.username}",
                    limit=PAGE_SIZE,
                    after=at.after,
                    before=at.before,
                )
                result = list_cases(svc, me.actor, flt)
                return result.items, result
            result = inbox(svc, me.actor, limit=PAGE_SIZE, after=at.after, before=at.before)
            if tab != "overdue":
                return result.items, result
            # the inbox is ordered by the nearest deadline: the breached ones lead it, and
            # the list ends at the first case not yet due
            late = [v for v in result.items if v.next_due_at and v.next_due_at < me.look.now]
            ends = len(late) < len(result.items)
            return late, CasePage(
                late,
                0,
                PAGE_SIZE,
                0,
                next=None if ends else result.next,
                previous=result.previous,
            )

        try:
            items, result = page(at)
        except InvalidInput:  # a cursor edited by hand, or of another list: the first page
            at = _Position()
            items, result = page(at)
        return render(
            request,
            me,
            "inbox.html",
            tab=tab,
            rows=[_row(svc, v) for v in items],
            pager=at.pager(request, result, len(items), counted=tab != "overdue"),
        )

    @get("/cases", sync_to_thread=True)
    def cases_page(
        request: Request[Any, Any, Any],
        procedure: FromQuery[str | None] = None,
        step: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        q: FromQuery[str | None] = None,
        assignee: FromQuery[str | None] = None,
    ) -> Template:
        me = staff(request)
        rt = svc.company(me.actor.company)
        at = _Position.of(request)
        assignee = (assignee or "").strip()[:130] or None
        procs = {k: rt.procedures[k] for k in readable_procedures(svc, rt, me.actor)}
        problems: dict[str, str] = {}
        if procedure and procedure not in procs:
            problems["procedure"] = "unknown procedure"
            procedure = None
        if status not in (None, "", "open", "closed"):
            problems["status"] = "open or closed"
            status = None
        q = (q or "").strip()[:200] or None
        flt = CaseFilter(
            procedure=procedure or None,
            step=step or None,
            status=status or None,
            q=q,
            assignee=assignee,
            limit=PAGE_SIZE,
            after=at.after,
            before=at.before,
        )
        result = CasePage([], 0, PAGE_SIZE, 0)
        try:
            result = list_cases(svc, me.actor, flt)
        except InvalidInput as exc:
            problems.update(exc.details.get("errors") or {"q": exc.message})
        return render(
            request,
            me,
            "cases.html",
            rows=[_row(svc, v) for v in result.items],
            pager=at.pager(request, result, len(result.items)),
            procedures=procs,
            chosen={
                "procedure": procedure or "",
                "step": step or "",
                "status": status or "",
                "assignee": assignee or "",
            },
            q=q or "",
            problems=problems,
            # the API's export of the case list (GET /api/v1/exports/cases.xlsx|csv)
            export_url="/api/v1/exports/cases",
            export_query=urlencode(
                {
                    k: v
                    for k, v in (
                        ("procedure", procedure),
                        ("status", status),
                        ("lang", me.look.locale),
                    )
                    if v
                }
            ),
        )

    # -- opening a case ---------------------------------------------------------------------
    @get("/new", sync_to_thread=True)
    def new_page(request: Request[Any, Any, Any]) -> Template:
        me = staff(request)
        rt = svc.company(me.actor.company)
        openable = {
            k: p
            for k, p in rt.procedures.items()
            if any(svc.holds(me.actor, rt, k, r) for r in p.pack.open.role)
        }
        return render(request, me, "new.html", procedures=openable)

    def _open_form(me: Staff, key: str) -> Any:
        rt = svc.company(me.actor.company)
        proc = rt.procedures.get(key)
        if proc is None:
            raise NotFound(f"procedure '{key}' is not enabled")
        if not any(svc.holds(me.actor, rt, key, r) for r in proc.pack.open.role):
            raise NotAllowed(f"opening a '{key}' case needs one of its opening roles")
        return proc

    @get("/new/{key:str}", sync_to_thread=True)
    def open_page(request: Request[Any, Any, Any], key: FromPath[str]) -> Template:
        me = staff(request)
        proc = _open_form(me, key)
        o = proc.pack.open
        return render(
            request,
            me,
            "open.html",
            proc=proc,
            form=_form(svc, me, proc, ordered(o.ask, o.require), list(o.require), {}, None, {}),
        )

    @post("/new/{key:str}", status_code=303, request_max_body_size=MAX_UPLOAD)
    async def open_post(request: Request[Any, Any, Any], key: FromPath[str]) -> Response[Any]:
        form = await posted(request)
        try:
            me = await blocking(staff, request)
            proc = await blocking(_open_form, me, key)
            o = proc.pack.open
            names = ordered(o.ask, o.require)
            done = await submit(
                request,
                settings,
                form,
                svc,
                me.actor,
                proc,
                names,
                me.look.tz,
                lambda values: svc.open_case(me.actor.company, key, me.actor, values),
            )
        finally:
            await form.close()
        if done.ok:
            return see_other(f"/web/cases/{done.result.case.id}?done=1")
        inputs = _form(
            svc, me, proc, names, list(o.require), {}, done.typed, done.errors, done.uploads
        )
        return render(
            request, me, "open.html", done.status, proc=proc, form=inputs, message=done.message
        )

    # -- the case page ------------------------------------------------------------------------
    def case_context(
        me: Staff,
        case_id: int,
        typed: Typed | None = None,
        acting: str | None = None,
        errors: Mapping[str, str] | None = None,
        uploads: Mapping[int, Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        view = svc.get_case(me.actor.company, case_id)
        require_read(svc, me.actor, view)
        proc = svc.pinned(view)
        rt = svc.company(me.actor.company)
        fields = proc.pack.fields
        deadlines = [
            {**d.as_dict(me.look.locale, me.look.tz), "due": d.due_at}
            for d in svc.deadlines(me.actor.company, case_id)
        ]
        journal = svc.journal(me.actor.company, case_id)
        lk = me.look.locale
        given = svc.signatures(me.actor.company, case_id) if proc.pack.signatures else []
        states = signatures.progress(proc.pack.signatures, given)
        step = proc.step(view.step)
        actions = []
        for a in svc.available_actions(me.actor.company, case_id, me.actor):
            mine = a.name == acting
            act_def = step.actions.get(a.name)
            sign = act_def.sign if act_def is not None else None
            actions.append(
                {
                    "name": a.name,
                    "label": a.label,
                    "signs": _signing(svc, me, rt, proc, states[sign]) if sign else None,
                    "form": _form(
                        svc,
                        me,
                        proc,
                        a.ask,
                        a.require,
                        view.fields,
                        typed if mine else None,
                        (errors or {}) if mine else {},
                        uploads if mine else None,
                    ),
                    "open": mine,
                }
            )
        shown = [
            (name, fields[name], _display(fields[name], view.fields.get(name), me.look))
            for name in fields
            if view.fields.get(name) not in (None, "", [])
        ]
        files = (
            svc.uploads(me.actor.company, case_id)
            if proc.attachment_fields & {k for k, v in view.fields.items() if v}
            else []
        )
        return {
            "case": view,
            "proc": proc,
            "step": step,
            "shown": shown,
            "signatures": [_signature(rt, proc, st, lk) for st in states.values()],
            "attachments": _attachments(proc, view, files, lk),
            "records": [
                (name, rec.title, rec.form_number) for name, rec in proc.pack.records.items()
            ],
            "downloads": True,  # attachment links for staff (the portal shows names only)
            "assignees": [_assignee(rt, proc, a, me.look.locale) for a in view.assignees],
            "deadlines": deadlines,
            "journal": journal,
            "last_seq": journal[-1]["seq"] if journal else 0,
            "actions": actions,
            "linked": linked_cases(svc, me.actor.company, case_id),
            "can_read_linked": lambda key: (
                key in rt.procedures and can_read(svc, rt, me.actor, rt.procedures[key])
            ),
        }

    @get("/cases/{case_id:int}", sync_to_thread=True)
    def case_page(
        request: Request[Any, Any, Any], case_id: FromPath[int], done: FromQuery[int] = 0
    ) -> Template:
        me = staff(request)
        if not 1 <= case_id <= 2**62:
            raise NotFound(f"case {case_id} not found")
        return render(request, me, "case.html", done=bool(done), **case_context(me, case_id))

    @post(
        "/cases/{case_id:int}/actions/{action:str}",
        status_code=303,
        request_max_body_size=MAX_UPLOAD,
    )
    async def act_post(
        request: Request[Any, Any, Any], case_id: FromPath[int], action: FromPath[str]
    ) -> Response[Any]:
        form = await posted(request)
        try:
            me = await blocking(staff, request)
            if not 1 <= case_id <= 2**62:
                raise NotFound(f"case {case_id} not found")
            view = await blocking(svc.get_case, me.actor.company, case_id)
            await blocking(require_read, svc, me.actor, view)
            proc = await blocking(svc.pinned, view)
            act_def = proc.step(view.step).actions.get(action)
            names = ordered(act_def.ask, act_def.require) if act_def else []
            raw_version = first(form.typed, "_version") or ""
            version = max(int(raw_version) if raw_version.isdigit() else 0, 1)
            done = await submit(
                request,
                settings,
                form,
                svc,
                me.actor,
                proc,
                names,
                me.look.tz,
                lambda values: svc.act(
                    me.actor.company, case_id, action, me.actor, values, version
                ),
            )
        finally:
            await form.close()
        if done.ok:
            return see_other(f"/web/cases/{case_id}?done=1")
        extra: dict[str, Any] = {"message": done.message}
        if isinstance(done.refusal, Refused):
            extra["rule"] = done.refusal.details.get("rule")
        if isinstance(done.refusal, Conflict):
            seen = first(done.typed, "_seq") or "0"
            extra = {
                "conflict": done.message,
                "seen_seq": int(seen) if seen.isdigit() else 0,
                "typed_list": [
                    (k[len(PREFIX) :], ", ".join(v))
                    for k, v in done.typed.items()
                    if k.startswith(PREFIX) and any(v) and not k.endswith(INTERNAL)
                ],
            }
        ctx = await blocking(
            case_context, me, case_id, done.typed, action, done.errors, done.uploads
        )
        if "seen_seq" in extra:
            extra["changes"] = [e for e in ctx["journal"] if e["seq"] > extra["seen_seq"]]
            extra["action_gone"] = not any(a["name"] == action for a in ctx["actions"])
        return render(request, me, "case.html", status=done.status, acting=action, **ctx, **extra)

    # -- procedures and the diagram -----------------------------------------------------------
    def _proc(me: Staff, key: str) -> Any:
        rt = svc.company(me.actor.company)
        proc = rt.procedures.get(key)
        if proc is None or not can_read(svc, rt, me.actor, proc):
            raise NotFound(f"procedure '{key}' not found")
        return proc

    @get("/procedures", sync_to_thread=True)
    def procedures_page(request: Request[Any, Any, Any]) -> Template:
        me = staff(request)
        rt = svc.company(me.actor.company)
        keys = readable_procedures(svc, rt, me.actor)
        return render(
            request, me, "procedures.html", procedures={k: rt.procedures[k] for k in keys}
        )

    @get("/procedures/{key:str}", sync_to_thread=True)
    def procedure_page(request: Request[Any, Any, Any], key: FromPath[str]) -> Template:
        me = staff(request)
        proc = _proc(me, key)
        return render(request, me, "procedure.html", proc=proc)

    @get("/procedures/{key:str}/diagram.svg", sync_to_thread=True)
    def diagram(request: Request[Any, Any, Any], key: FromPath[str]) -> Response[bytes]:
        me = staff(request)
        proc = _proc(me, key)
        svg = procedure_svg(proc.pack, me.look.locale)
        return Response(
            svg.encode(),
            media_type="image/svg+xml",
            headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"},
        )

    # -- supervisors: who has what ---------------------------------------------------------------
    @get("/board", sync_to_thread=True)
    def board_page(request: Request[Any, Any, Any]) -> Template:
        me = staff(request)
        rt = svc.company(me.actor.company)
        rows = workload(svc, me.actor, me.look.now)
        people = rt.definition.people
        return render(
            request,
            me,
            "board.html",
            rows=[
                {**r, "name": people[r["ref"]].name if r["ref"] in people else r["ref"]}
                for r in rows
            ],
        )

    # -- supervisors: reports ---------------------------------------------------------------------
    def _reports(me: Staff) -> dict[str, Any]:
        return available(svc, me.actor.company)

    @get("/reports", sync_to_thread=True)
    def reports_page(request: Request[Any, Any, Any]) -> Template:
        me = staff(request)
        return render(request, me, "reports.html", reports=_reports(me), result=None)

    @get("/reports/{name:str}", sync_to_thread=True)
    def report_page(request: Request[Any, Any, Any], name: FromPath[str]) -> Template:
        me = staff(request)
        reports = _reports(me)
        if name not in reports:
            raise NotFound(f"unknown report '{name}'")
        params = {
            k: v[:200] for k, v in request.query_params.items() if k != "page" and len(k) <= 64
        }
        params.setdefault("lang", me.look.locale)  # the reports that have words: the page's
        try:
            result, problem = run_report(svc, me.actor.company, name, params), None
        except InvalidInput as exc:
            result, problem = None, exc.message
        chart = None
        if result is not None and result.chart is not None:
            # the SVG the API's chart route draws, inlined as an image: no second run of the
            # report, no script (an <img> runs none), allowed by the pages' img-src data:
            svg = charts.svg(result.chart).encode()
            chart = "data:image/svg+xml;base64," + base64.b64encode(svg).decode()
        query = urlencode(params)
        return render(
            request,
            me,
            "reports.html",
            reports=reports,
            report=name,
            title=reports[name].title,
            params=params,
            result=result,
            problem=problem,
            chart=chart,
            chart_title=result.chart.title if result and result.chart else "",
            exports={
                fmt: f"/api/v1/reports/{name}/export.{fmt}?{query}" for fmt in ("xlsx", "csv")
            },
        )

    return Router(
        path="/web",
        route_handlers=[
            login_page,
            login_post,
            logout_post,
            set_language,
            home,
            inbox_page,
            cases_page,
            new_page,
            open_page,
            open_post,
            case_page,
            act_post,
            procedures_page,
            procedure_page,
            diagram,
            board_page,
            reports_page,
            report_page,
        ],
        response_headers=HEADERS,
        exception_handlers={Unauthenticated: on_unauthenticated},
        include_in_schema=False,
    )


# -- helpers -----------------------------------------------------------------------------------
def _end_session(svc: CaseService, ref: str) -> None:
    with svc.db.write() as conn:
        conn.execute(t.user_session.delete().where(t.user_session.c.id == ref))


#: a cursor is some 60 characters; a longer one was not written by kefu
CURSOR_MAX = 200


@dataclass
class _Position:
    """Where a page of a list is read from: after the case a ``next`` cursor names, or
    up to the case a ``previous`` cursor names (keyset pagination both ways — a deep page
    costs what the first does, and a case opened meanwhile neither repeats nor skips a
    row), and the number of its first row (for display)."""

    after: str | None = None
    before: str | None = None
    first: int = 1

    @classmethod
    def of(cls, request: Request[Any, Any, Any]) -> _Position:
        q = request.query_params
        after, before = q.get("after") or None, q.get("before") or None
        raw = q.get("from", "1")
        first = int(raw) if raw.isdigit() and 1 <= int(raw) <= 10**9 else 1
        if after is not None and len(after) <= CURSOR_MAX:
            return cls(after=after, first=first)
        if before is not None and len(before) <= CURSOR_MAX:
            return cls(before=before, first=first)
        return cls()  # not our links: the first page

    def pager(
        self,
        request: Request[Any, Any, Any],
        result: CasePage,
        shown: int,
        counted: bool = True,
    ) -> dict[str, Any]:
        """The links and figures of the pager under a list."""
        params = {
            k: v for k, v in request.query_params.items() if k not in ("after", "before", "from")
        }

        def link(key: str, cursor: str, first: int) -> str:
            return request.url.path + "?" + urlencode({**params, key: cursor, "from": first})

        # read backwards and found to be the first page (the list's start moved): row 1
        first = 1 if self.before is not None and result.previous is None else self.first
        prev = None
        if result.previous is not None:
            prev = link("before", result.previous, max(first - PAGE_SIZE, 1))
        nxt = None
        if result.next is not None:
            nxt = link("after", result.next, first + shown)
        # a link to the first page, unless this is it (an empty page past the end has one)
        moved = result.previous is not None or (
            not shown and (self.after is not None or self.before is not None)
        )
        return {
            "first": first if shown else 0,
            "last": first + shown - 1,
            "total": result.total if counted else None,
            "exact": result.total_exact,
            "prev": prev,
            "next": nxt,
            "start": request.url.path + "?" + urlencode(params) if moved else None,
        }


def _row(svc: CaseService, v: CaseView) -> dict[str, Any]:
    proc = svc.pinned(v)
    return {"case": v, "title": proc.pack.title, "step": proc.step(v.step).label}


def _assignee(rt: Any, proc: Any, ref: str, locale: str) -> str:
    kind, _, name = ref.partition(":")
    c = rt.definition
    if kind == "role" and name in proc.pack.roles:
        return i18n.label(proc.pack.roles[name].label, locale)
    if kind == "department" and name in c.departments:
        return i18n.label(c.departments[name].label, locale)
    if kind == "person" and name in c.people:
        return f"{c.people[name].name} ({name})"
    return ref


def _people(rt: Any, username: str) -> str:
    person = rt.definition.people.get(username)
    return f"{person.name} ({username})" if person is not None else username


def _role(proc: Any, role: str, locale: str) -> str:
    r = proc.pack.roles.get(role)
    return i18n.label(r.label, locale) if r is not None else role


def _field_label(proc: Any, name: str, locale: str) -> str:
    f = proc.pack.fields.get(name)
    return i18n.label(f.label, locale) if f is not None else name


def _signature(rt: Any, proc: Any, st: signatures.Progress, locale: str) -> dict[str, Any]:
    """One of the pack's signatures as the case page shows it: each signature given (void
    ones with the fields whose change voided them), and the roles it still waits for."""
    sdef = st.definition
    valid_roles = {s.role for s in st.valid}
    return {
        "name": st.name,
        "label": sdef.label,
        "need": sdef.need,
        "covers": [_field_label(proc, n, locale) for n in sdef.covers],
        "roles": [_role(proc, r, locale) for r in sdef.roles],
        "complete": st.complete,
        "count": len(valid_roles & set(sdef.roles)),
        "total": len(sdef.roles) if sdef.need == "all" else 1,
        "waiting": [_role(proc, r, locale) for r in st.waiting],
        "signed": [
            {
                "who": _people(rt, s.username),
                "role": _role(proc, s.role, locale),
                "at": s.signed_at,
                "hash": s.fields_hash,
                "void_at": s.void_at,
                "changed": [_field_label(proc, n, locale) for n in s.changed],
            }
            for s in st.signed
        ],
    }


def _signing(svc: CaseService, me: Staff, rt: Any, proc: Any, st: signatures.Progress) -> Any:
    """What taking a ``sign:`` action signs, as the signing check of the commit pipeline
    (:func:`core.cases.signatures.plan`) sees it for this person now: in which role, and
    whether it completes the set — or why they cannot sign."""
    locale = me.look.locale
    sdef = st.definition
    info: dict[str, Any] = {
        "label": sdef.label,
        "covers": [_field_label(proc, n, locale) for n in sdef.covers],
        "need": sdef.need,
        "waiting": [_role(proc, r, locale) for r in st.waiting],
    }
    try:
        plan = signatures.plan(
            sdef,
            st.name,
            st.valid,
            me.actor.username,
            lambda role: svc.holds(me.actor, rt, proc.key, role),
        )
    except NotAllowed as exc:
        info["cannot"] = exc.message
    else:
        info.update(role=_role(proc, plan.role, locale), completes=plan.complete)
    return info


def _attachments(proc: Any, view: CaseView, uploads: list[dict[str, Any]], locale: str) -> Any:
    """The case's files by attachment field: those the field holds now, then earlier
    ones a later action replaced (still the case's, and in its journal)."""
    out = []
    for name, f in proc.pack.fields.items():
        if f.type != "attachment":
            continue
        now = {int(v["id"]) for v in files_of(view.fields.get(name))}
        mine = [u for u in uploads if u["field"] == name]
        if not mine:
            continue
        out.append(
            {
                "name": name,
                "label": f.label,
                "files": [
                    {
                        "id": u["id"],
                        "name": u["filename"],
                        "size": u["size"],
                        "type": u["media_type"],
                        "sha256": u["sha256"],
                        "by": u["uploaded_by"],
                        "at": u["uploaded_at"],
                        "current": u["id"] in now,
                    }
                    for u in sorted(mine, key=lambda u: (u["id"] not in now, u["id"]))
                ],
            }
        )
    return out


def _display(f: Any, value: Any, lk: Look) -> Any:
    """A stored value as a reader sees it (a list field: rows of cells; an attachment
    field: its files)."""
    if f.type == "attachment":
        return {"files": files_of(value)}
    if f.type == "list" and isinstance(value, list):
        subs = f.of or {}
        return {
            "columns": [(n, s.label) for n, s in subs.items()],
            "rows": [
                [_display(s, it.get(n), lk) for n, s in subs.items()]
                for it in value
                if isinstance(it, dict)
            ],
        }
    if value is None:
        return ""
    if f.type == "boolean":
        return i18n.gettext(lk.locale, "yes") if value else i18n.gettext(lk.locale, "no")
    if f.type == "datetime":
        return i18n.local(value, lk.tz)
    if f.type == "choice" and f.choices:
        items = value if isinstance(value, list) else [value]
        return ", ".join(
            i18n.label(f.choices[v], lk.locale) if v in f.choices else str(v) for v in items
        )
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _form(
    svc: CaseService,
    me: Staff,
    proc: Any,
    names: list[str],
    required: list[str],
    current: Mapping[str, Any],
    typed: Typed | None,
    errors: Mapping[str, str],
    uploads: Mapping[int, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    people = svc.company(me.actor.company).definition.people
    return form_inputs(people, proc, names, required, current, typed, errors, me.look.tz, uploads)


def form_inputs(
    people: Mapping[str, Any],
    proc: Any,
    names: list[str],
    required: list[str],
    current: Mapping[str, Any],
    typed: Typed | None,
    errors: Mapping[str, str],
    tz: dt.tzinfo,
    uploads: Mapping[int, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The inputs of a form: per field its widget, label, value (typed, else stored for a
    list field; an attachment field's current files and the uploads the form carries,
    ``uploads`` naming them) and the validator's message."""
    out = []
    for name in names:
        f = proc.pack.fields[name]
        w = widget_for(f)
        key = PREFIX + name
        value: Any
        if f.type == "attachment":
            value = attachment_input(f, key, current.get(name), typed, uploads or {})
        elif typed is not None and (key in typed or key + "._shown" in typed):
            value = typed.get(key, [])
            value = value if f.multiple else (value[0] if value else "")
        elif f.type == "list":
            value = current.get(name)
        else:
            value = w.show(f, None, tz)
        out.append(
            {
                "name": name,
                "input": key,
                "id": "f-" + name,
                "def": f,
                "macro": w.macro,
                "value": value,
                "required": name in required,
                "error": errors.get(name),
                "rows": table(f, key, current.get(name), typed, tz, uploads or {})
                if f.type == "list"
                else None,
                "files": takes_files(f),
                "people": people,
            }
        )
    for name, message in errors.items():  # a problem with no input of its own
        if name not in names:
            out.append({"name": name, "macro": "orphan", "error": message, "def": None})
    return out


def table(
    f: Any,
    key: str,
    stored: Any,
    typed: Typed | None,
    tz: dt.tzinfo,
    uploads: Mapping[int, Mapping[str, Any]],
) -> list[Row]:
    """The rows of a list field's table; an attachment cell holds what
    :func:`attachment_input` shows for it (the item's files, the ones this form carries)."""
    rows = table_rows(f, key[len(PREFIX) :], stored, typed, tz)
    subs = {s: d for s, d in (f.of or {}).items() if d.type == "attachment"}
    if subs:
        items = {str(i.get("id")): i for i in stored or [] if isinstance(i, dict)}
        for row in rows:
            item = items.get(str(row.id), {}) if row.id is not None else {}
            for s, d in subs.items():
                cell = f"{key}.{row.index}.{s}"
                row.cells[s] = attachment_input(d, cell, item.get(s), typed, uploads)
    return rows


def attachment_input(
    f: Any, key: str, stored: Any, typed: Typed | None, uploads: Mapping[int, Mapping[str, Any]]
) -> dict[str, Any]:
    """What an attachment field's widget shows: the case's current files (a multiple
    field's with their keep boxes, ticked as the form left them), the files uploaded for
    this form and not saved yet, and what the field takes."""
    current = files_of(stored)
    had = ",".join(str(c["id"]) for c in current)
    pending: list[Mapping[str, Any]] = []
    kept = {str(c["id"]) for c in current}
    if typed is not None:
        ids = [int(v) for v in typed.get(key + NEW, []) if v.isdigit()]
        pending = [uploads[i] for i in ids if i in uploads]
        if key + HAD in typed:
            kept = set(typed.get(key + KEEP, []))
    return {
        "current": current,
        "pending": pending,
        "kept": kept,
        "had": had,
        "limit": attachments.max_size(f),
        "accept": list(f.accept or attachments.DEFAULT_ACCEPT),
    }


__all__ = ["attachment_input", "build_pages", "form_inputs"]
