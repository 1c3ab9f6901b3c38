"""Forms: what staff submit at an opening or an action, checked against the step's form.

The API, the scenario runner and the commit pipeline all validate submitted values here,
so a value is accepted or refused the same way whichever door it came through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from core.spec.fields import FieldValueError, coerce
from core.spec.procedures import CompiledProcedure


def coerce_fields(
    proc: CompiledProcedure,
    data: Mapping[str, Any],
    allowed: Iterable[str],
    required: Iterable[str],
    current: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Validate submitted form data against the step's form: (values, errors by field).

    ``current`` are the case's stored fields (a list field's one-item change is relative
    to them)."""
    allowed_set = set(allowed)
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name, value in data.items():
        if name not in allowed_set:
            errors[name] = (
                "unknown field"
                if name not in proc.pack.fields
                else "this form does not ask for this field"
            )
            continue
        try:
            values[name] = coerce(
                proc.pack.fields[name], value, None if current is None else current.get(name)
            )
        except FieldValueError as exc:
            errors[name] = str(exc)
    for name in required:
        if values.get(name) is None and name not in errors:
            errors[name] = "required"
    return values, errors


def ordered(ask: Sequence[str], require: Sequence[str]) -> list[str]:
    """The fields a form shows, in order: those it asks, then required ones it did not ask."""
    out = list(ask)
    out += [r for r in require if r not in out]
    return out
