"""Wiring of the pages: the Jinja template configuration, the static files, the routers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Router, get
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from api.auth import AuthSettings, PasswordPool
from api.portal import build_portal
from api.web.context import PageSettings
from api.web.pages import build_pages
from core.cases.service import CaseService

HERE = Path(__file__).resolve().parent


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
    pages = PageSettings(auth.cookie_secure, auth.cookie_name)
    return [root, static, build_pages(svc, auth, pool), build_portal(svc, pages)]
