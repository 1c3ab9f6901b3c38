"""What the page tests share: a signed-in TestClient, a form's CSRF token, the field
messages of a page, and a page's elements as a browser's parser sees them."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

from litestar.testing import TestClient

from api.app import create_app
from api.auth import AuthSettings
from core.cases.service import CaseService
from tests.helpers import PASSWORD

#: pages tests run with: cookies without Secure (the test client speaks http), long sessions
SETTINGS = AuthSettings(cookie_secure=False, idle_timeout=dt.timedelta(days=2))


class Dom(HTMLParser):
    """The elements and text of a page, as a browser's parser would see them."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def handlers(self) -> list[str]:
        return [k for _, attrs in self.tags for k in attrs if k.startswith("on")]


def csrf(c: TestClient[Any], url: str) -> str:
    """The CSRF token of the forms on ``url`` (the page must answer 200)."""
    r = c.get(url)
    assert r.status_code == 200, r.text
    m = re.search(r'name="_csrf" value="([^"]+)"', r.text)
    assert m, "no CSRF field on " + url
    return m.group(1)


def errors(html: str) -> dict[str, str]:
    """The validator's messages beside the fields of a page, by field."""
    return dict(re.findall(r'class="error" id="f-[^"]*-error" data-field="([^"]+)">([^<]*)<', html))


def clients(svc: CaseService, settings: AuthSettings = SETTINGS) -> Callable[..., TestClient[Any]]:
    """``client(user=None)``: a TestClient of an app on ``svc``, signed in as ``user``
    (password :data:`tests.helpers.PASSWORD`) through the sign-in page."""
    app = create_app(svc, auth=settings)

    def client(user: str | None = None, company: str | None = None) -> TestClient[Any]:
        c = TestClient(app)
        if user:
            token = csrf(c, "/web/login")
            data = {"_csrf": token, "username": user, "password": PASSWORD, "next": "/web/cases"}
            if company:
                data["company"] = company
            r = c.post("/web/login", data=data, follow_redirects=False)
            assert r.status_code == 303, r.text
            assert r.headers["location"] == "/web/cases"
        return c

    return client
