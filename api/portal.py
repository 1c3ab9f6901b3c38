"""The customer portal under ``/portal/<company>``: no account, three doors.

- **Intake**: a public form per procedure the company publishes (``portal: {intake: true}``
  in its config) opens a case through the case service, as the portal's role (``customer``),
  with the opening form less the values the portal fixes itself; the answer is the case
  number to track it by.
- **Status**: the case number plus a contact the customer gave (phone or e-mail, the
  ``portal.contact`` fields) shows where the case stands; a wrong number and a wrong
  contact get the same answer.
- **Links**: the ``portal_link`` effect (a rule's ``then:``) puts a one-time link into the
  outbox, in the action's transaction. The token has 256 bits; only its SHA-256 is kept
  (in the journal entry that issued it). Its first visit records it as used (a primary
  key: one use across any number of server processes), checks expiry and that the case is
  still at the step it was issued for, and exchanges it for a short portal session (an
  HttpOnly cookie, hashed in the database) with a redirect to a clean URL, so the token
  is neither in the address bar nor in a Referer (``Referrer-Policy: no-referrer``). The
  session allows the link's actions on that one case, once.

Every form post checks a CSRF token; intake, status lookups and link visits are rate
limited per client address with counters in the database (:func:`allow`), so the limits
hold across server processes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import zoneinfo
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response, Router, get, post
from litestar.datastructures import Cookie
from litestar.params import FromPath
from litestar.response import Template
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, case, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from api.documents import MAX_UPLOAD
from api.web.context import (
    Look,
    PageSettings,
    blocking,
    csrf_ok,
    first,
    form_of,
    look,
    page,
    see_other,
)
from api.web.i18n import N_, gettext
from api.web.pages import form_inputs
from api.web.security import HEADERS
from api.web.submit import CORRECT, EXPIRED, Outcome, submit
from api.web.uploads import posted
from core.cases.commit import Actor
from core.cases.service import CaseService, CompanyRuntime
from core.errors import NotFound, Refused
from core.spec.definitions import KEY_RE, Label, LabelIn, PackDef
from core.spec.effects import Change, EffectType, OutboxDraft, Problem
from core.spec.forms import ordered
from core.storage import schema as t

PORTAL_ACTOR = "portal"
SESSION_COOKIE = "kefu_portal"
SESSION_LIFE = dt.timedelta(minutes=30)
WINDOW = dt.timedelta(minutes=10)
#: requests per client address and window, per door
LIMITS = {"intake": 10, "status": 20, "link": 20}
#: what a customer is told (the pages translate them)
TOO_MANY = N_("Too many attempts; try again later.")
LINK_GONE = N_("This link has expired or was used already.")


# -- rate limits in the database --
def allow(conn: Connection, key: str, limit: int, now: dt.datetime, window: dt.timedelta) -> bool:
    """Count one request for ``key``; False once ``limit`` requests fell in this window.

    One conditional UPDATE per request (a new window restarts the count), an INSERT the
    first time: every server process counts on the same row, and no read-then-write race
    lets a burst through.
    """
    rl = t.rate_limit
    fresh = rl.c.window_start <= now - window
    row = conn.execute(
        update(rl)
        .where(rl.c.key == key)
        .values(
            count=_case(fresh, 1, rl.c.count + 1),
            window_start=_case(fresh, now, rl.c.window_start),
        )
        .returning(rl.c.count)
    ).first()
    if row is None:
        # a new key: first sweep the counters whose window is over (served by their index)
        conn.execute(delete(rl).where(rl.c.window_start <= now - window))
        try:
            with conn.begin_nested():
                conn.execute(insert(rl).values(key=key, window_start=now, count=1))
            return True
        except IntegrityError:  # another process inserted it first: count on its row
            return allow(conn, key, limit, now, window)
    return int(row[0]) <= limit


def _case(cond: Any, yes: Any, no: Any) -> Any:
    return case((cond, yes), else_=no)


# -- the portal_link effect ------------------------------------------------------------------------
class PortalLinkArgs(BaseModel):
    """``portal_link: {actions: [confirm, reopen], address: email, valid_hours: 168,
    subject: {zh-CN: 请确认维修报价, en: please answer the quote}}``"""

    model_config = ConfigDict(extra="forbid")
    actions: list[str] = Field(min_length=1)
    address: str = Field(pattern=KEY_RE)
    channel: str = Field(default="default", pattern=r"^[a-z][a-z0-9_-]*$")
    valid_hours: int = Field(default=168, ge=1, le=24 * 90)
    # what the link asks of the customer, after the case number (default: confirm the result)
    subject: LabelIn | None = None


def _check_link(args: PortalLinkArgs, pack: PackDef) -> list[Problem]:
    out = []
    known = {a for s in pack.steps.values() for a in s.actions} | set(pack.actions)
    for i, name in enumerate(args.actions):
        if name not in known:
            out.append(Problem(("actions", i), "K105", f"unknown action '{name}'"))
    if args.address not in pack.fields:
        out.append(Problem(("address",), "K106", f"unknown field '{args.address}'"))
    return out


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def public_url() -> str:
    """Where customers reach this server (``KEFU_PUBLIC_URL``), for the links in messages."""
    return os.environ.get("KEFU_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")


def link_subject(number: str, asks: Label | None, locale: str) -> str:
    """The subject of a link's message: the case number, then what the link asks of the
    customer (``portal_link``'s ``subject``), by default to confirm the result."""
    if asks is None:
        return gettext(locale, "{case}: please confirm").format(case=number)
    return gettext(locale, "{case}: {asks}").format(case=number, asks=asks.text(locale))


def _apply_link(change: Change, args: PortalLinkArgs, rule_id: str) -> None:
    """Issue a one-time link for the customer: the token goes out in the message only."""
    raw = secrets.token_urlsafe(32)
    now = change.now or dt.datetime.now(dt.UTC)
    expires = now + dt.timedelta(hours=args.valid_hours)
    company = change.context.get("company")
    key = company.company if company is not None else ""
    path = f"/portal/{key}/t/{change.case_number}/{raw}"
    change.note(
        "portal-link",
        rule_id,
        digest=digest(raw),
        actions=list(args.actions),
        step=change.step,
        expires_at=expires.astimezone(dt.UTC).isoformat(),
    )
    locale = company.locale if company is not None else "zh-CN"
    subject = link_subject(change.case_number, args.subject, locale)
    change.outbox.append(
        OutboxDraft(
            args.channel,
            "customer",
            "portal.link",
            {
                "case": change.case_number,
                "step": change.step,
                "rule": rule_id,
                "address": change.fields.get(args.address),
                "link": public_url() + path,
                "expires_at": expires.astimezone(dt.UTC).isoformat(),
                "subject": subject,
                "body": f"{subject}\n{public_url() + path}",
            },
        )
    )


PORTAL_LINK = EffectType(
    "portal_link",
    PortalLinkArgs,
    _apply_link,
    _check_link,
    "a one-time link for the customer to take `actions` on the case (customer portal)",
)


# -- the routes --------------------------------------------------------------------------------
@dataclass
class Published:
    """A procedure a company publishes on the portal, with its settings."""

    key: str
    proc: Any
    settings: Any


def published(rt: CompanyRuntime) -> dict[str, Published]:
    out = {}
    for key, proc in rt.procedures.items():
        s = rt.definition.procedures.get(key)
        if s is not None and s.portal is not None:
            out[key] = Published(key, proc, s.portal)
    return out


def _normal(value: Any) -> str:
    text = str(value or "").strip().lower()
    return "".join(ch for ch in text if ch not in " -()")


def build_portal(svc: CaseService, settings: PageSettings) -> Router:
    """The ``/portal`` router for ``svc``."""

    def company(key: str) -> CompanyRuntime:
        rt = svc.companies.get(key)
        if rt is None or not published(rt):
            raise NotFound(N_("no such portal"))
        return rt

    def lk(request: Request[Any, Any, Any], rt: CompanyRuntime) -> Look:
        return look(request, rt.definition.locale, rt.definition.timezone, svc.clock.now())

    def render(
        request: Request[Any, Any, Any],
        rt: CompanyRuntime | None,
        name: str,
        status: int = 200,
        cookies: list[Cookie] | None = None,
        **ctx: Any,
    ) -> Template:
        if rt is None:
            rt = next(iter(svc.companies.values()))
        return page(
            request,
            settings,
            name,
            lk(request, rt),
            status,
            cookies,
            company=rt,
            company_name=rt.definition.name,
            published=published(rt),
            **ctx,
        )

    def limited(request: Request[Any, Any, Any], door: str) -> bool:
        key = f"portal-{door}:{settings.client(request)}"
        with svc.db.write() as conn:
            return not allow(conn, key, LIMITS[door], svc.clock.now(), WINDOW)

    # -- intake ----------------------------------------------------------------------------
    def intake_form(pub: Published) -> list[str]:
        o = pub.proc.pack.open
        return [n for n in ordered(o.ask, o.require) if n not in pub.settings.fixed]

    def form_rows(
        rt: CompanyRuntime, pub: Published, typed: Any, errors: Any, uploads: Any = None
    ) -> Any:
        o = pub.proc.pack.open
        return form_inputs(
            rt.definition.people,
            pub.proc,
            intake_form(pub),
            list(o.require),
            {},
            typed,
            errors or {},
            lk_tz(rt),
            uploads,
        )

    def lk_tz(rt: CompanyRuntime) -> Any:
        return zoneinfo.ZoneInfo(rt.definition.timezone)

    @get("/{key:str}", sync_to_thread=True)
    def portal_home(request: Request[Any, Any, Any], key: FromPath[str]) -> Template:
        rt = company(key)
        return render(request, rt, "portal/home.html")

    def _intake(rt: CompanyRuntime, procedure: str) -> Published:
        pub = published(rt).get(procedure)
        if pub is None or not pub.settings.intake:
            raise NotFound(N_("no such form"))
        return pub

    @get("/{key:str}/new/{procedure:str}", sync_to_thread=True)
    def intake_page(
        request: Request[Any, Any, Any], key: FromPath[str], procedure: FromPath[str]
    ) -> Template:
        rt = company(key)
        pub = _intake(rt, procedure)
        return render(
            request, rt, "portal/intake.html", pub=pub, form=form_rows(rt, pub, None, None)
        )

    @post("/{key:str}/new/{procedure:str}", status_code=200, request_max_body_size=MAX_UPLOAD)
    async def intake_post(
        request: Request[Any, Any, Any], key: FromPath[str], procedure: FromPath[str]
    ) -> Response[Any]:
        form = await posted(request)
        try:
            rt = await blocking(company, key)
            pub = await blocking(_intake, rt, procedure)
            actor = Actor(PORTAL_ACTOR, rt.key, frozenset(), frozenset({pub.settings.role}))
            if csrf_ok(request, settings, form.typed) and await blocking(
                limited, request, "intake"
            ):  # counted before any file is stored
                done = Outcome(status=429, message=TOO_MANY)
            else:
                done = await submit(
                    request,
                    settings,
                    form,
                    svc,
                    actor,
                    pub.proc,
                    intake_form(pub),
                    lk_tz(rt),
                    lambda values: svc.open_case(
                        rt.key, procedure, actor, {**values, **pub.settings.fixed}
                    ),
                )
        finally:
            await form.close()
        if done.ok:
            number = done.result.case.number
            return render(request, rt, "portal/received.html", pub=pub, number=number)
        inputs = form_rows(rt, pub, done.typed, done.errors, done.uploads)
        message = done.message if done.status in (403, 413, 429) else CORRECT
        if isinstance(done.refusal, Refused):
            message = done.message
        return render(
            request, rt, "portal/intake.html", done.status, pub=pub, form=inputs, message=message
        )

    # -- status ------------------------------------------------------------------------------
    @get("/{key:str}/status", sync_to_thread=True)
    def status_page(request: Request[Any, Any, Any], key: FromPath[str]) -> Template:
        rt = company(key)
        return render(request, rt, "portal/status.html")

    def lookup(rt: CompanyRuntime, number: str, contact: str) -> Any:
        if "\x00" in number + contact:  # no case number or contact holds one
            return None
        cid = svc.case_id_by_number(rt.key, number)
        if cid is None:
            return None
        view = svc.get_case(rt.key, cid)
        pub = published(rt).get(view.procedure)
        if pub is None or not contact:
            return None
        given = _normal(contact)
        if not any(given and given == _normal(view.fields.get(f)) for f in pub.settings.contact):
            return None
        return view

    def public_history(rt: CompanyRuntime, view: Any) -> list[dict[str, Any]]:
        """What a customer may see of the journal: when the case moved, and to which step."""
        proc = svc.pinned(view)
        out = []
        for e in svc.journal(rt.key, view.id):
            data = e["data"] or {}
            if e["kind"] == "opened":
                out.append({"at": e["at"], "step": proc.pack.start})
            elif data.get("to_step") and data.get("to_step") != data.get("from_step"):
                out.append({"at": e["at"], "step": data["to_step"]})
        return [
            {"at": h["at"], "label": proc.pack.steps[h["step"]].label}
            for h in out
            if h["step"] in proc.pack.steps
        ]

    @post("/{key:str}/status", status_code=200)
    async def status_post(request: Request[Any, Any, Any], key: FromPath[str]) -> Template:
        form = await form_of(request)
        rt = await blocking(company, key)
        number = (first(form, "number") or "").strip()[:64]
        contact = (first(form, "contact") or "").strip()[:200]
        if not csrf_ok(request, settings, form):
            return render(
                request,
                rt,
                "portal/status.html",
                403,
                message=EXPIRED,
            )
        if await blocking(limited, request, "status"):
            return render(
                request,
                rt,
                "portal/status.html",
                429,
                message=TOO_MANY,
                number=number,
            )
        view = await blocking(lookup, rt, number, contact)
        if view is None:
            return render(
                request,
                rt,
                "portal/status.html",
                404,
                message=N_("No case matches this number and contact."),
                number=number,
            )
        proc = await blocking(svc.pinned, view)
        history = await blocking(public_history, rt, view)
        return render(
            request,
            rt,
            "portal/case.html",
            case=view,
            proc=proc,
            step=proc.step(view.step),
            history=history,
            actions=[],
        )

    # -- one-time links ------------------------------------------------------------------------
    def exchange(rt: CompanyRuntime, number: str, raw: str) -> str | None:
        """The link's token for a portal session (its raw cookie value), or None."""
        now = svc.clock.now()
        wanted = digest(raw)
        cid = svc.case_id_by_number(rt.key, number)
        if cid is None:
            return None
        view = svc.get_case(rt.key, cid)
        issued = next(
            (
                e
                for e in svc.journal(rt.key, cid)
                if e["kind"] == "portal-link" and (e["data"] or {}).get("digest") == wanted
            ),
            None,
        )
        if issued is None:
            return None
        data = issued["data"]
        if dt.datetime.fromisoformat(data["expires_at"]) <= now:
            return None
        if view.status != "open" or view.step != data.get("step"):
            return None
        session = secrets.token_urlsafe(32)
        try:
            with svc.db.write() as conn:
                conn.execute(
                    insert(t.portal_token_used).values(
                        digest=wanted, company_id=rt.id, case_id=cid, used_at=now
                    )
                )
                conn.execute(delete(t.portal_session).where(t.portal_session.c.expires_at <= now))
                conn.execute(
                    insert(t.portal_session).values(
                        digest=digest(session),
                        company_id=rt.id,
                        case_id=cid,
                        actions=list(data.get("actions") or []),
                        expires_at=now + SESSION_LIFE,
                    )
                )
        except IntegrityError:  # used already (in this process or another)
            return None
        return session

    @get("/{key:str}/t/{number:str}/{token:str}", sync_to_thread=True)
    def link(
        request: Request[Any, Any, Any],
        key: FromPath[str],
        number: FromPath[str],
        token: FromPath[str],
    ) -> Response[Any]:
        rt = company(key)
        if limited(request, "link"):
            return render(
                request,
                rt,
                "portal/message.html",
                429,
                message=TOO_MANY,
            )
        valid = len(token) <= 128 and "\x00" not in number + token
        session = exchange(rt, number[:64], token) if valid else None
        if session is None:
            return render(
                request,
                rt,
                "portal/message.html",
                410,
                message=LINK_GONE,
            )
        cookie = Cookie(
            key=SESSION_COOKIE,
            value=session,
            path="/portal",
            max_age=int(SESSION_LIFE.total_seconds()),
            httponly=True,
            samesite="lax",
            secure=settings.cookie_secure,
        )
        answer = see_other(f"/portal/{key}/case", cookies=[cookie])
        answer.headers["Referrer-Policy"] = "no-referrer"  # the token's URL is nobody's referrer
        return answer

    def portal_session(request: Request[Any, Any, Any], rt: CompanyRuntime) -> Any:
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw or len(raw) > 128:
            return None
        ps = t.portal_session
        with svc.db.read() as conn:
            row = conn.execute(
                select(ps).where(ps.c.digest == digest(raw), ps.c.company_id == rt.id)
            ).first()
        if row is None or row.expires_at <= svc.clock.now():
            return None
        return row

    def link_context(
        rt: CompanyRuntime,
        row: Any,
        typed: Any,
        acting: str | None,
        errors: Any,
        uploads: Any = None,
    ) -> dict[str, Any]:
        view = svc.get_case(rt.key, row.case_id)
        proc = svc.pinned(view)
        pub = published(rt).get(view.procedure)
        role = pub.settings.role if pub else "customer"
        actor = Actor(PORTAL_ACTOR, rt.key, frozenset(), frozenset({role}))
        actions = [
            {
                "name": a.name,
                "label": a.label,
                "form": form_inputs(
                    rt.definition.people,
                    proc,
                    a.ask,
                    a.require,
                    view.fields,
                    typed if a.name == acting else None,
                    errors if a.name == acting else {},
                    lk_tz(rt),
                    uploads if a.name == acting else None,
                ),
            }
            for a in svc.available_actions(rt.key, view.id, actor)
            if a.name in (row.actions or [])
        ]
        return {
            "case": view,
            "proc": proc,
            "step": proc.step(view.step),
            "history": public_history(rt, view),
            "actions": actions,
            "actor": actor,
        }

    def _expired(request: Request[Any, Any, Any], rt: CompanyRuntime) -> Template:
        return render(
            request,
            rt,
            "portal/message.html",
            401,
            message=LINK_GONE,
        )

    @get("/{key:str}/case", sync_to_thread=True)
    def link_case(request: Request[Any, Any, Any], key: FromPath[str]) -> Template:
        rt = company(key)
        row = portal_session(request, rt)
        if row is None:
            return _expired(request, rt)
        ctx = link_context(rt, row, None, None, {})
        return render(request, rt, "portal/case.html", **ctx)

    @post("/{key:str}/case/{action:str}", status_code=200, request_max_body_size=MAX_UPLOAD)
    async def link_act(
        request: Request[Any, Any, Any], key: FromPath[str], action: FromPath[str]
    ) -> Response[Any]:
        form = await posted(request)
        try:
            rt = await blocking(company, key)
            row = await blocking(portal_session, request, rt)
            if row is None or action not in (row.actions or []):
                return _expired(request, rt)
            ctx = await blocking(link_context, rt, row, None, None, {})
            view = ctx["case"]
            act_def = ctx["step"].actions.get(action)
            names = ordered(act_def.ask, act_def.require) if act_def else []
            done = await submit(
                request,
                settings,
                form,
                svc,
                ctx["actor"],
                ctx["proc"],
                names,
                lk_tz(rt),
                lambda values: svc.act(rt.key, view.id, action, ctx["actor"], values, view.version),
            )
        finally:
            await form.close()
        if not done.ok:
            if done.errors:
                ctx = await blocking(
                    link_context, rt, row, done.typed, action, done.errors, done.uploads
                )
            return render(request, rt, "portal/case.html", done.status, message=done.message, **ctx)
        await blocking(_end_portal_session, svc, row.digest)
        gone = Cookie(key=SESSION_COOKIE, value="", path="/portal", max_age=0)
        return render(request, rt, "portal/message.html", 200, [gone], message=N_("Thank you."))

    return Router(
        path="/portal",
        route_handlers=[
            portal_home,
            intake_page,
            intake_post,
            status_page,
            status_post,
            link,
            link_case,
            link_act,
        ],
        opt={"exclude_from_auth": True},
        response_headers=HEADERS,  # errors: the app's handlers (api.web.site.page_errors)
        include_in_schema=False,
    )


def _end_portal_session(svc: CaseService, session_digest: str) -> None:
    with svc.db.write() as conn:
        conn.execute(delete(t.portal_session).where(t.portal_session.c.digest == session_digest))


__all__ = ["PORTAL_LINK", "allow", "build_portal", "published"]
