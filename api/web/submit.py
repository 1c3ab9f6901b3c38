"""One submission of a form, for the staff pages and the portal alike.

The form's CSRF token is checked, its files are stored through the attachment service
(:mod:`api.web.uploads`), its inputs are read by the field widgets
(:func:`api.web.widgets.read_form`) and the values go to the case service (``run``:
``svc.open_case`` or ``svc.act``), which validates them as it does for the API. Whatever
refuses the submission — an expired form, a file the field does not take, a value, a
rule, a stale version, someone who may not — comes back as an :class:`Outcome`: a status,
a message, the messages beside the fields, and what the form shows again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from litestar import Request

from api.web.context import PageSettings, blocking, csrf_ok, csrf_secret
from api.web.i18n import N_
from api.web.uploads import TOO_LARGE, Posted, receive, too_large
from api.web.widgets import Typed, read_form
from core.errors import Conflict, InvalidInput, KefuError, NotAllowed, Refused
from core.spec.procedures import CompiledProcedure

EXPIRED = N_("The form has expired; submit it again.")
CORRECT = N_("Please correct the marked fields.")


@dataclass
class Outcome:
    """How a submission ended: ``result`` (the service's answer) when it went through,
    else the page's status, a message, the field messages and the refusal itself."""

    result: Any = None
    status: int = 200
    message: str | None = None
    errors: dict[str, str] = field(default_factory=dict)
    typed: Typed = field(default_factory=dict)
    uploads: dict[int, dict[str, Any]] = field(default_factory=dict)
    refusal: KefuError | None = None

    @property
    def ok(self) -> bool:
        return self.status < 400


async def submit(
    request: Request[Any, Any, Any],
    settings: PageSettings,
    form: Posted,
    svc: Any,
    actor: Any,
    proc: CompiledProcedure,
    names: list[str],
    tz: dt.tzinfo,
    run: Callable[[dict[str, Any]], Any],
) -> Outcome:
    """Submit ``form`` (the fields ``names`` of ``proc``) as ``actor`` through ``run``."""
    if form.too_large:
        return Outcome(status=413, message=TOO_LARGE, errors=too_large(proc, names))
    if not csrf_ok(request, settings, form.typed):
        return Outcome(status=403, message=EXPIRED, typed=form.typed)
    got = await blocking(receive, svc, actor, proc, names, form, csrf_secret(request, settings))
    if got.errors:
        return Outcome(
            status=got.status,
            message=CORRECT,
            errors=got.errors,
            typed=got.typed,
            uploads=got.uploads,
        )
    typed, uploads = got.typed, got.uploads
    try:
        values = read_form(proc.pack.fields, names, typed, tz)
        result = await blocking(run, values)
    except InvalidInput as exc:
        errors = dict(exc.details.get("errors") or {})
        return Outcome(None, 422, CORRECT, errors, typed, uploads, exc)
    except (Refused, Conflict, NotAllowed) as exc:
        return Outcome(None, exc.status, exc.message, {}, typed, uploads, exc)
    return Outcome(result, typed=typed, uploads=uploads)
