"""The edge of the API: what every request must be before any route looks at it.

- **No NUL characters** anywhere: not in the path, a query parameter or a JSON body (key
  or value). PostgreSQL refuses them in text and JSONB, and no form field needs one, so
  they are a 422 naming the parameter or the body path, on every database alike.
- **JSON bodies are JSON**: a route that reads a JSON body takes it only with
  ``Content-Type: application/json`` (or ``…+json``); anything else is a 415. A browser
  can send ``text/plain`` from any site without asking, so this also closes a door to
  cross-site requests.
- **Bounded JSON**: nested at most :data:`MAX_DEPTH` levels, integers within 64 bits;
  deeper or bigger is a 422 naming where (a thousand ``[`` in a 2 KB body used to exhaust
  the recursion limit).
- **Types as declared**: the body is checked strictly against the route's body type
  (``"1"`` is not the integer 1), so what the OpenAPI document says is what is accepted.
- **No cross-site writes with the session cookie**: an unsafe request (POST, PUT, PATCH,
  DELETE) without an ``Authorization`` header is refused (403) when the browser says it
  comes from another site (``Sec-Fetch-Site: cross-site`` or ``same-site``) or its
  ``Origin`` is not this server's. API tokens are exempt: a browser never adds them by
  itself.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import msgspec
from litestar import Request
from litestar.datastructures import Headers
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar.types.empty import Empty

from core.errors import InvalidInput, KefuError, NotAllowed

MAX_DEPTH = 32
MAX_INT = 2**63 - 1
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class MalformedRequest(InvalidInput):
    """A request that is not what the API reads at all (not a form error)."""

    code = "malformed-request"


class UnsupportedMediaType(KefuError):
    """A body in a content type the route does not read."""

    code = "unsupported-media-type"
    status = 415


def _no_nul(text: str, where: str) -> None:
    if "\x00" in text:
        raise MalformedRequest(
            f"{where}: contains a NUL character (\\u0000), which no value may hold",
            errors={where: "contains a NUL character"},
        )


def check_query(path: str, query_string: bytes) -> None:
    """Refuse a NUL in the path or in any query parameter's name or value."""
    _no_nul(path, "path")
    if b"\x00" in query_string or b"%00" in query_string:
        for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
            _no_nul(name, "query parameter name")
            _no_nul(value, name)
        _no_nul(query_string.decode("latin-1"), "query")  # e.g. a NUL in a malformed pair


def check_json(value: Any) -> None:
    """Walk a decoded JSON value without recursion: depth, integer range, NUL characters."""
    stack: list[tuple[Any, str, int]] = [(value, "$", 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise MalformedRequest(
                f"body: nested deeper than {MAX_DEPTH} levels at {where}",
                errors={"body": f"nested deeper than {MAX_DEPTH} levels"},
            )
        if isinstance(item, str):
            _no_nul(item, f"body {where}")
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if not -MAX_INT <= item <= MAX_INT:
                raise MalformedRequest(
                    f"body {where}: the number has {len(str(abs(item)))} digits; "
                    "numbers must fit in 64 bits",
                    errors={f"body {where}": "number too large"},
                )
        elif isinstance(item, dict):
            for key, sub in item.items():
                _no_nul(key, f"body key {where}")
                stack.append((sub, f"{where}.{key}", depth + 1))
        elif isinstance(item, list):
            stack.extend((sub, f"{where}[{i}]", depth + 1) for i, sub in enumerate(item))


def decode_json(body: bytes, content_type: str) -> Any:
    """The JSON value of a request body, refused (415/422) unless it is bounded JSON."""
    if not body:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        raise UnsupportedMediaType(
            f"the body must be sent as 'Content-Type: application/json' (got '{media or 'none'}')"
        )
    try:
        value = msgspec.json.decode(body)
    except RecursionError:
        raise MalformedRequest(
            f"body: nested deeper than {MAX_DEPTH} levels",
            errors={"body": f"nested deeper than {MAX_DEPTH} levels"},
        ) from None
    except msgspec.DecodeError as exc:
        raise MalformedRequest(f"body: not valid JSON ({exc})", errors={"body": str(exc)}) from None
    check_json(value)
    return value


def body_type(request: Request[Any, Any, Any]) -> Any:
    """The type the route declares for its body (``data``), or None."""
    param = request.route_handler.parsed_fn_signature.parameters.get("data")
    return None if param is None else param.annotation


class GuardedRequest(Request[Any, Any, Any]):
    """A request whose JSON body is checked (:func:`decode_json`) and strictly typed."""

    async def json(self) -> Any:
        if self._json is Empty and self._connection_state.json is Empty:
            value = decode_json(await self.body(), self.headers.get("content-type", ""))
            annotation = body_type(self)
            if annotation is not None and value is not None:
                try:
                    msgspec.convert(value, type=annotation, strict=True)
                except msgspec.ValidationError as exc:
                    raise MalformedRequest(f"body: {exc}", errors={"body": str(exc)}) from None
            self._json = self._connection_state.json = value
        return await super().json()


def check_origin(
    method: str, headers: Headers, host: str | None, trusted: frozenset[str] = frozenset()
) -> None:
    """Refuse an unsafe browser request from another site (see the module's docstring).
    ``trusted``: origins (``https://kefu.example.com``) accepted besides this server's
    ``Host``, for a reverse proxy that rewrites it."""
    if method not in UNSAFE or "authorization" in headers:
        return
    site = headers.get("sec-fetch-site")
    if site is not None and site.lower() not in ("same-origin", "none"):
        raise NotAllowed(f"a cross-site request may not change anything (Sec-Fetch-Site: {site})")
    origin = headers.get("origin")
    if origin is not None:
        parts = urlsplit(origin)
        same = parts.netloc.lower() == (host or "").lower()
        if origin == "null" or not (same or origin.rstrip("/").lower() in trusted):
            raise NotAllowed(
                f"a request from another origin ({origin}) may not change anything with the "
                "session cookie; integrations use an API token"
            )


class GuardMiddleware(ASGIMiddleware):
    """Runs :func:`check_query` and :func:`check_origin` on every HTTP request."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, trusted_origins: frozenset[str] = frozenset()) -> None:
        self.trusted = frozenset(o.rstrip("/").lower() for o in trusted_origins)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        check_query(scope["path"], scope.get("query_string", b""))
        headers = Headers.from_scope(scope)
        check_origin(str(scope.get("method", "GET")), headers, headers.get("host"), self.trusted)
        await next_app(scope, receive, send)
