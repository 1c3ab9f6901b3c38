"""Every error as an RFC 9457 problem (``application/problem+json``), never a stack trace.

``type`` is ``urn:kefu:problem:<code>`` with the stable codes of ``core.errors`` (and
``malformed-request``, ``not-authenticated``, ``internal-error``); ``detail`` says what
and where; extensions carry ``errors`` (field → problem), ``current_version``,
``rule`` and ``roles`` where they apply.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec

from api.models import Problem
from core.errors import KefuError

log = logging.getLogger("kefu.api")

PROBLEM = "application/problem+json"
TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    423: "Locked",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}

#: what a problem answer means on kefu's routes, for the OpenAPI document
WHY = {
    401: "not signed in, or the credentials are bad, expired or revoked",
    403: "you do not hold the role this needs",
    404: "no such thing in your company",
    409: "stale expected_version, or the action is not available at the case's step",
    422: "malformed request, form errors, or refused by a rule",
    503: "the rule engine is unavailable",
}


def errors(*codes: int, why: Mapping[int, str] | None = None) -> dict[int, ResponseSpec]:
    """The OpenAPI ``responses=`` of a route: the problem answers it can give.

    401 is always listed (authentication answers it before any route runs). ``why``
    gives a route's own description of a status instead of the general one (:data:`WHY`).
    Plugins document their routes with it too: ``responses=errors(404)``.
    """
    described = {**WHY, **(why or {})}
    return {
        c: ResponseSpec(
            Problem,
            description=described.get(c, TITLES.get(c, "Error")),
            media_type=PROBLEM,
            generate_examples=False,
        )
        for c in sorted({401, *codes})
    }


def problem(
    request: Request[Any, Any, Any],
    status: int,
    code: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **ext: Any,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": f"urn:kefu:problem:{code}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    body.update({k: v for k, v in ext.items() if v is not None})
    return Response(body, status_code=status, media_type=PROBLEM, headers=headers)


def kefu_error(request: Request[Any, Any, Any], exc: KefuError) -> Response[dict[str, Any]]:
    wait = exc.details.get("retry_after")
    headers = {"Retry-After": str(wait)} if wait is not None else None
    return problem(request, exc.status, exc.code, exc.message, headers, **exc.details)


def validation_error(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[dict[str, Any]]:
    """A malformed body, an unknown key or a bad query parameter: 422 naming each one."""
    errors: dict[str, str] = {}
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            key = str(item.get("key") or item.get("source") or "body")
            errors[key] = str(item.get("message", "invalid"))
    detail = "; ".join(f"{k}: {v}" for k, v in errors.items()) or str(exc.detail)
    return problem(request, 422, "malformed-request", detail, errors=errors or None)


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    code = {
        404: "not-found",
        405: "method-not-allowed",
        401: "not-authenticated",
        403: "not-allowed",
        413: "too-large",
        415: "unsupported-media-type",
    }.get(status, "http-error")
    if status == 400:  # Litestar's own 400s are malformed requests (bad JSON and the like)
        return problem(request, 422, "malformed-request", str(exc.detail))
    return problem(request, status, code, str(exc.detail), headers=exc.headers)


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(request, 500, "internal-error", "an internal error occurred; it has been logged")


HANDLERS: dict[Any, Any] = {
    KefuError: kefu_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    Exception: internal_error,
}

__all__ = ["HANDLERS", "PROBLEM", "MediaType", "errors", "problem"]
