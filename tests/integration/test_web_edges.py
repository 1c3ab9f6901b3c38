"""The edges of the pages: what a browser gets where no page answers (an HTML page under
/web and /portal, a problem document under /api), and which address a request counts
against when a reverse proxy forwards it (one function for the API's sign-in limits and
the portal's rate limits, trusting X-Forwarded-For only from KEFU_TRUSTED_PROXIES)."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from litestar import Request
from litestar.testing import TestClient

from api import portal
from api.app import create_app
from api.auth import AuthSettings
from api.guard import client_address, proxy_networks
from core.cases.service import CaseService
from tests.web import SETTINGS, Dom, clients, csrf

pytestmark = pytest.mark.service(logins=["wang"])


def message(html: str) -> str:
    m = re.search(r'id="(?:error|portal)-message">([^<]*)<', html)
    assert m, html[:500]
    return m.group(1)


def test_errors_under_web_and_portal_are_pages_in_the_readers_language(svc: CaseService) -> None:
    web = clients(svc)
    anon, wang = web(), web("wang")
    english = {"Accept-Language": "en"}
    for c, url, status, text in [
        (wang, "/web/no-such-page", 404, "Not found"),
        (wang, "/web/cases/abc", 404, "Not found"),  # no route takes a word for an id
        (anon, "/portal/demo/no-such-page", 404, "Not found"),
        (anon, "/portal/nobody/new/repair-desk", 404, "no such portal"),
    ]:
        r = c.get(url, headers=english)
        assert r.status_code == status, url
        assert r.headers["content-type"].startswith("text/html"), url
        assert "unsafe-inline" not in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY"
        assert message(r.text) == text, url
    assert message(wang.get("/web/no-such-page").text) == "未找到"  # the company's language
    # a method the page does not take
    r = wang.delete("/web/inbox", headers=english)
    assert r.status_code == 405 and message(r.text) == "Method not allowed"
    # an unknown company's portal names no company; a known one keeps its header
    assert "示例客服" not in anon.get("/portal/nobody/x").text
    assert "示例客服" in anon.get("/portal/demo/x").text
    # a form body over the size the pages take
    big = anon.post(
        "/portal/demo/status",
        content=b"number=" + b"9" * (2 * 1024 * 1024),
        headers={"content-type": "application/x-www-form-urlencoded", **english},
    )
    assert big.status_code == 413 and message(big.text) == "The request is too large."
    # the API keeps its problem documents
    r = anon.get("/api/v1/no-such-thing")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "urn:kefu:problem:not-found"


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_an_internal_error_on_a_page_is_a_page_and_is_logged(
    svc: CaseService, monkeypatch: pytest.MonkeyPatch
) -> None:
    wang = clients(svc)("wang")
    kept = Kept()
    logging.getLogger("kefu.web").addHandler(kept)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(CaseService, "deadlines", broken)
    cid = svc.open_case(
        "demo",
        "repair-desk",
        svc.actor("demo", "wang"),
        {"channel": "phone", "customer_name": "x", "phone": "13912345678", "symptom": "y"},
    ).case.id
    r = wang.get(f"/web/cases/{cid}", headers={"Accept-Language": "en"})
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("text/html")
    assert message(r.text) == "Something went wrong on the server; it has been logged."
    assert "fire" not in r.text and "Traceback" not in r.text
    logging.getLogger("kefu.web").removeHandler(kept)
    assert [str(rec.exc_info[1]) for rec in kept.records if rec.exc_info] == ["the disk is on fire"]
    api = wang.get(f"/api/v1/cases/{cid}/deadlines")
    assert api.headers["content-type"] == "application/problem+json"


def request_from(peer: str, *forwarded: str) -> Request[Any, Any, Any]:
    headers = [(b"x-forwarded-for", f.encode()) for f in forwarded]
    scope: Any = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": headers,
        "client": (peer, 40000),
        "query_string": b"",
    }
    return Request(scope)


def test_the_client_address_is_forwarded_only_by_a_trusted_proxy() -> None:
    proxies = proxy_networks("10.0.0.0/8, 127.0.0.1")
    # no proxy trusted: the header is the client's own words, and ignored
    assert client_address(request_from("203.0.113.7", "198.51.100.1")) == "203.0.113.7"
    # an untrusted peer cannot choose its address
    assert client_address(request_from("203.0.113.7", "198.51.100.1"), proxies) == "203.0.113.7"
    # the trusted proxy appended the address it was reached from: that is the client
    assert client_address(request_from("127.0.0.1", "198.51.100.1"), proxies) == "198.51.100.1"
    # a client's own X-Forwarded-For comes before what the proxy appends: not believed
    spoofed = request_from("127.0.0.1", "1.2.3.4, 198.51.100.1")
    assert client_address(spoofed, proxies) == "198.51.100.1"
    # two proxies of ours in a row: the first address neither of them is
    chain = request_from("10.0.0.2", "198.51.100.1, 10.0.0.9")
    assert client_address(chain, proxies) == "198.51.100.1"
    assert client_address(request_from("10.0.0.2", "198.51.100.1", "10.0.0.9"), proxies) == (
        "198.51.100.1"
    )  # the header given twice reads as one list
    # garbage from a proxy: the proxy's address is as far as it can be told
    assert client_address(request_from("10.0.0.2", "unknown"), proxies) == "10.0.0.2"
    assert client_address(request_from("10.0.0.2"), proxies) == "10.0.0.2"  # no header
    assert client_address(request_from("::1", "2001:db8::5"), proxy_networks("::1")) == (
        "2001:db8::5"
    )
    with pytest.raises(ValueError, match="KEFU_TRUSTED_PROXIES: 'ten' is not an address"):
        AuthSettings.from_env({"KEFU_TRUSTED_PROXIES": "10.0.0.1, ten"})
    settings = AuthSettings.from_env({"KEFU_TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/16"})
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.1/32", "192.168.0.0/16"]


class Peer:
    """The app as reached from ``address`` (a reverse proxy's, say): what a TCP peer is."""

    def __init__(self, app: Any, address: str) -> None:
        self.app, self.address = app, address

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = {**scope, "client": (self.address, 40000)}
        await self.app(scope, receive, send)


@pytest.mark.parametrize("trusted", [True, False])
def test_portal_rate_limits_count_the_forwarded_client_behind_a_trusted_proxy(
    svc: CaseService, monkeypatch: pytest.MonkeyPatch, trusted: bool
) -> None:
    monkeypatch.setitem(portal.LIMITS, "status", 2)
    settings = AuthSettings(
        cookie_secure=False, trusted_proxies=proxy_networks("10.0.0.1") if trusted else ()
    )
    c = TestClient(Peer(create_app(svc, auth=settings), "10.0.0.1"))
    token = csrf(c, "/portal/demo/status")

    def lookup(client: str) -> int:
        r = c.post(
            "/portal/demo/status",
            data={"_csrf": token, "number": "x", "contact": "y"},
            headers={"X-Forwarded-For": client},
        )
        return r.status_code

    first = [lookup("198.51.100.1") for _ in range(3)]
    other = lookup("198.51.100.2")
    assert first == [404, 404, 429]
    # behind a trusted proxy each customer has their own count; otherwise the header is
    # ignored and everybody behind the proxy shares one
    assert other == (404 if trusted else 429)


def test_page_sign_in_limits_count_the_same_address(
    svc: CaseService, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = AuthSettings(
        cookie_secure=False,
        trusted_proxies=proxy_networks("10.0.0.1"),
        login_per_address=2,
        failure_delay=SETTINGS.failure_delay * 0,
    )
    app = Peer(create_app(svc, auth=settings), "10.0.0.1")
    c = TestClient(app)
    token = csrf(c, "/web/login")

    def attempt(client: str) -> int:
        r = c.post(
            "/web/login",
            data={"_csrf": token, "username": "wang", "password": "wrong"},
            headers={"X-Forwarded-For": client},
        )
        return r.status_code

    assert [attempt("198.51.100.1") for _ in range(3)] == [401, 401, 429]
    assert attempt("198.51.100.2") == 401  # another customer behind the same proxy
    api = c.post(
        "/api/v1/auth/login",
        json={"username": "wang", "password": "wrong"},
        headers={"X-Forwarded-For": "198.51.100.1"},
    )
    assert api.status_code == 429  # the API counts the same address as the pages
    assert Dom(c.get("/web/login").text).handlers() == []
