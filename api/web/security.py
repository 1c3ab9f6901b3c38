"""What every page and form gets: security headers and a CSRF token.

**CSRF** is a double-submit token: a random value (256 bits) in an HttpOnly, SameSite=Strict
cookie, and the same value in a hidden ``_csrf`` field of every form the page draws. A
form post whose field does not match its cookie is refused with a page saying the form
expired (403); another site can neither read the cookie nor set it (``__Host-`` when the
cookie is Secure). The session cookie is SameSite=Lax on top of that, and the API's
same-site checks apply to the pages too.

**Headers** on every page: a Content-Security-Policy that allows only this server's own
styles and scripts (no inline script or style at all) and no framing, ``nosniff``,
``Referrer-Policy: same-origin`` (no Referer to another site; ``no-referrer`` would make
browsers send ``Origin: null`` with every form, which same-site checks must refuse),
``X-Frame-Options: DENY`` for old browsers, and ``Cache-Control: no-store`` (a case page
must not stay in a shared cache).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from litestar import Request
from litestar.datastructures import Cookie, ResponseHeader

CSRF_FIELD = "_csrf"

CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

HEADERS = [
    ResponseHeader(name="Content-Security-Policy", value=CSP),
    ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
    ResponseHeader(name="Referrer-Policy", value="same-origin"),
    ResponseHeader(name="X-Frame-Options", value="DENY"),
    ResponseHeader(name="Cache-Control", value="no-store"),
]


def csrf_cookie_name(secure: bool) -> str:
    # __Host-: only this host, path /, Secure — a sibling subdomain cannot plant it
    return "__Host-kefu_csrf" if secure else "kefu_csrf"


class Csrf:
    """The CSRF token of one request: the cookie's, or a new one the response sets."""

    def __init__(self, request: Request[Any, Any, Any], secure: bool) -> None:
        self.name = csrf_cookie_name(secure)
        self.secure = secure
        current = request.cookies.get(self.name)
        self.fresh = not (current and 32 <= len(current) <= 128)
        self.token = secrets.token_urlsafe(32) if self.fresh else str(current)

    def cookie(self) -> list[Cookie]:
        """The cookie to set with the response (none when the browser has it already)."""
        if not self.fresh:
            return []
        return [
            Cookie(
                key=self.name,
                value=self.token,
                path="/",
                httponly=True,
                samesite="strict",
                secure=self.secure,
            )
        ]

    def valid(self, submitted: str | None) -> bool:
        """Whether a form's ``_csrf`` matches the cookie it came with (constant time)."""
        return (
            not self.fresh
            and submitted is not None
            and hmac.compare_digest(submitted.encode(), self.token.encode())
        )
