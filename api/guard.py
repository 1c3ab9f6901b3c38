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
- **Who the client is**: :func:`client_address` is the one place that says which address
  a request comes from, for every per-address limit (API and page sign-ins, the portal's
  rate limits): the peer's, or — only when the peer is a trusted reverse proxy
  (``KEFU_TRUSTED_PROXIES``) — the nearest address in ``X-Forwarded-For`` that is not one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
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
#: hops of X-Forwarded-For looked at, at most (a client may send a long list of its own)
MAX_HOPS = 20

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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


def proxy_networks(raw: str | None, variable: str = "KEFU_TRUSTED_PROXIES") -> tuple[Network, ...]:
    """The networks of ``raw``: comma-separated addresses or CIDR ranges (``10.0.0.5``,
    ``10.1.0.0/16``, ``::1``). A malformed entry raises ``ValueError`` naming ``variable``."""
    out = []
    for part in (raw or "").split(","):
        text = part.strip()
        if not text:
            continue
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"{variable}: '{text}' is not an address or a CIDR range") from None
    return tuple(out)


def _trusted(address: str, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in n for n in networks)


def client_address(request: Request[Any, Any, Any], trusted: Iterable[Network] = ()) -> str:
    """The address a request comes from, for per-address limits.

    The peer's address, unless the peer is one of the ``trusted`` proxies: then
    ``X-Forwarded-For`` is read from its right end (each proxy appends the address it was
    reached from) and the first address that is not a trusted proxy is the client. A
    client cannot choose its key by sending the header itself: an untrusted peer's header
    is ignored, and the trusted proxy appends the real address after whatever it sent.
    """
    networks = tuple(trusted)
    peer = request.client.host if request.client is not None else "unknown"
    if not networks or not _trusted(peer, networks):
        return peer
    hops = [
        h.strip()
        for value in request.headers.getall("x-forwarded-for", [])
        for h in value.split(",")
        if h.strip()
    ]
    address = peer
    for hop in reversed(hops[-MAX_HOPS:]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # not an address: the proxy before it is as far as we can tell
        address = hop
        if not _trusted(hop, networks):
            break
    return address


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
