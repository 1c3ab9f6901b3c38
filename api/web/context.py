"""What every page's template gets, and the answers pages share (redirects, error pages).

Pages run the case service's blocking calls in a worker thread (:func:`blocking`), read
forms with :func:`form_of`, and answer through :func:`page`, which adds the CSRF cookie
and the helpers the templates use: ``t`` (the page's language), ``L`` (a pack label in
it), ``local`` (an instant in the company's zone) and ``rel`` ("due in 3 h").
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import anyio.to_thread
from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.response import Redirect, Template

from api.auth import AuthSettings
from api.guard import Network, client_address
from api.web import i18n, uploads
from api.web.security import CSRF_FIELD, HEADERS, Csrf

T = TypeVar("T")


@dataclass
class PageSettings:
    """How the pages run: cookies Secure or not, the session cookie's name and the trusted
    reverse proxies (the API's ``AuthSettings``: one setting for both)."""

    cookie_secure: bool
    session_cookie: str
    trusted_proxies: tuple[Network, ...] = ()

    @classmethod
    def of(cls, auth: AuthSettings) -> PageSettings:
        return cls(auth.cookie_secure, auth.cookie_name, auth.trusted_proxies)

    def client(self, request: Request[Any, Any, Any]) -> str:
        """The client's address (:func:`api.guard.client_address`)."""
        return client_address(request, self.trusted_proxies)


async def blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking call (the case service, the database) off the event loop."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


async def form_of(request: Request[Any, Any, Any]) -> dict[str, list[str]]:
    """The posted form, every input with all its values (check boxes send several)."""
    data = await request.form()
    out: dict[str, list[str]] = {}
    for key, value in data.multi_items():
        if isinstance(value, str):
            out.setdefault(key, []).append(value)
    return out


def first(form: Mapping[str, list[str]], key: str) -> str | None:
    values = form.get(key)
    return values[0] if values else None


@dataclass
class Look:
    """The language and time zone a page is drawn in."""

    locale: str
    tz: dt.tzinfo
    now: dt.datetime

    def helpers(self) -> dict[str, Any]:
        return {
            "lang": self.locale,
            "t": functools.partial(i18n.gettext, self.locale),
            "L": lambda value: i18n.label(value, self.locale),
            "local": lambda moment: i18n.local(moment, self.tz),
            "rel": lambda moment: i18n.relative(moment, self.now, self.locale),
            "size": i18n.size,
            # journal data as readable JSON (Chinese as it is; the page escapes it as text)
            "as_json": lambda v: json.dumps(v, ensure_ascii=False, sort_keys=True, default=str),
            "media": i18n.media,
            "now": self.now,
        }


def look(request: Request[Any, Any, Any], company_locale: str, timezone: str, now: Any) -> Look:
    locale = i18n.choose(
        request.cookies.get(i18n.LANG_COOKIE),
        request.headers.get("accept-language"),
        company_locale,
    )
    return Look(locale, zoneinfo.ZoneInfo(timezone), now)


def page(
    request: Request[Any, Any, Any],
    settings: PageSettings,
    name: str,
    lk: Look,
    status: int = 200,
    cookies: list[Cookie] | None = None,
    **context: Any,
) -> Template:
    """Render ``name`` with the common helpers and a CSRF token for its forms."""
    csrf = Csrf(request, settings.cookie_secure)
    return Template(
        template_name=name,
        context={
            **lk.helpers(),
            "csrf": csrf.token,
            # an upload id a form carries back, signed for this browser (api.web.uploads)
            "upload_token": functools.partial(uploads.token, csrf.token),
            "path": request.url.path,
            **context,
        },
        status_code=status,
        cookies=[*csrf.cookie(), *(cookies or [])],
        media_type="text/html",
        # error pages too (a router's response headers do not reach its exception answers)
        headers={h.name: str(h.value) for h in HEADERS},
    )


def csrf_ok(
    request: Request[Any, Any, Any], settings: PageSettings, form: Mapping[str, Any]
) -> bool:
    return Csrf(request, settings.cookie_secure).valid(first(form, CSRF_FIELD))


def csrf_secret(request: Request[Any, Any, Any], settings: PageSettings) -> str:
    """The CSRF token of this browser (its cookie's): what signs the upload ids its forms
    carry (:mod:`api.web.uploads`)."""
    return Csrf(request, settings.cookie_secure).token


def see_other(location: str, cookies: list[Cookie] | None = None) -> Response[Any]:
    """Post/redirect/get: 303 to ``location`` (a path of this server)."""
    return Redirect(path=location, status_code=303, cookies=cookies or [])


def safe_next(target: str | None, default: str = "/web/inbox") -> str:
    """Where to go after signing in: a path of the pages, never another site."""
    if not target or not target.startswith("/web/") or target.startswith("//") or "\\" in target:
        return default
    return target


def login_url(request: Request[Any, Any, Any]) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/web/login?next=" + quote(safe_next(target), safe="/")
