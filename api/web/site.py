"""Wiring of the pages: the Jinja template configuration, the static files, the routers,
and the error pages of everything under ``/web`` and ``/portal``.

A request under those paths that no page answers — an unknown path, a method the page
does not take, a body over the size limit, an internal error — gets an HTML page in the
reader's language (:func:`page_errors`); the API keeps answering problem documents.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from litestar import Request, Response, Router, get
from litestar.exceptions import HTTPException
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from api.auth import AuthSettings, PasswordPool
from api.portal import build_portal, published
from api.web.context import PageSettings, look, page
from api.web.i18n import N_
from api.web.pages import build_pages
from core.cases.service import CaseService
from core.errors import KefuError

HERE = Path(__file__).resolve().parent
log = logging.getLogger("kefu.web")
#: messages the error pages translate (anything else is shown as it is)
STATUS_TEXT = {
    400: N_("Bad request"),
    401: N_("Not signed in"),
    403: N_("Not allowed"),
    404: N_("Not found"),
    405: N_("Method not allowed"),
    409: N_("Conflict"),
    413: N_("The request is too large."),
    415: N_("Unsupported media type"),
    429: N_("Too many attempts; try again later."),
    500: N_("Something went wrong on the server; it has been logged."),
}


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """Jinja on the pages' templates; ``directory=`` keeps autoescape on for every file."""
    return TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine)


@get("/", exclude_from_auth=True, include_in_schema=False, sync_to_thread=False)
def root() -> Redirect:
    """The server's front door leads to the staff pages."""
    return Redirect(path="/web/inbox", status_code=303)


def web_routes(svc: CaseService, auth: AuthSettings, pool: PasswordPool) -> list[Any]:
    """The routers of the pages, the portal and their static files."""
    static: Router = create_static_files_router(
        path="/static", directories=[HERE / "static"], opt={"exclude_from_auth": True}
    )
    pages = PageSettings.of(auth)
    return [root, static, build_pages(svc, auth, pool), build_portal(svc, pages)]


#: what answers an error on a page path: (request, status, message) → a page, or None for
#: a path that is not a page's (the API's problem document then)
PageError = Callable[[Request[Any, Any, Any], int, str | None], Response[Any] | None]


def page_errors(svc: CaseService, auth: AuthSettings) -> PageError:
    """The error page of a request under ``/web`` or ``/portal/<company>``.

    Staff see ``error.html``; customers the portal's message page, with the company's
    name when the path names a company that publishes on the portal (else none). The
    page has the pages' security headers and a CSRF cookie like every other page.
    """
    settings = PageSettings.of(auth)

    def answer(
        request: Request[Any, Any, Any], status: int, message: str | None
    ) -> Response[Any] | None:
        path = request.url.path
        staff = path == "/web" or path.startswith("/web/")
        customer = path == "/portal" or path.startswith("/portal/")
        if not (staff or customer):
            return None
        text = message if message and status < 500 else STATUS_TEXT.get(status, N_("Error"))
        if status >= 500:
            status = 500
        first = next(iter(svc.companies.values()), None)
        rt = first
        if customer:
            key = path.split("/")[2] if path.count("/") >= 2 else ""
            rt = svc.companies.get(key)
            rt = rt if rt is not None and published(rt) else None
        chosen = rt or first
        d = chosen.definition if chosen is not None else None
        lk = look(
            request,
            d.locale if d else "zh-CN",
            d.timezone if d else "Asia/Shanghai",
            svc.clock.now(),
        )
        if staff:
            return page(request, settings, "error.html", lk, status, message=text, me=None)
        return page(
            request,
            settings,
            "portal/message.html",
            lk,
            status,
            message=text,
            company=rt,
            company_name=rt.definition.name if rt else "",
            published=published(rt) if rt else {},
        )

    return answer


def pages_first(handler: Callable[..., Response[Any]], page_error: PageError) -> Any:
    """An app-level exception handler that answers page paths with ``page_error``'s page
    and every other path with ``handler`` (the API's problem document)."""

    def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        if isinstance(exc, KefuError):
            status, message = exc.status, exc.message
        elif isinstance(exc, HTTPException):
            status, message = exc.status_code, None  # Litestar's words: the page's own
        else:
            status, message = 500, None
        answer = page_error(request, status, message)
        if answer is None:
            return handler(request, exc)
        if status >= 500:
            log.exception(
                "unhandled error on %s %s", request.method, request.url.path, exc_info=exc
            )
        return answer

    return handle
