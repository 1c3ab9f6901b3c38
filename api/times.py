"""Times in the API: ISO 8601 query parameters read in the company's time zone, and the
facts of journal entries shown with dates and instants as ISO 8601 text.

A query parameter such as ``created_from`` takes

- a date, ``2026-12-03``: the start of that day in the company's zone; for a ``*_to``
  parameter the end of that day, so the whole day is included;
- a local time, ``2026-12-03T09:30`` (seconds optional, a space instead of ``T`` too):
  that moment in the company's zone;
- an instant with its offset, ``2026-12-03T09:30:00+08:00`` or ``…Z``.

A ``*_to`` time is exclusive: ``created_to=2026-12-03T09:30`` lists cases created before
09:30. Anything else is a 422 problem naming the parameter.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from core.errors import InvalidInput
from core.spec.procedures import CompiledProcedure

EXAMPLES = "2026-12-03, 2026-12-03T09:30 or 2026-12-03T09:30:00+08:00"
# "+08:00" in a URL query arrives as " 08:00" when the "+" was not written as %2B
_PLUS_AS_SPACE = re.compile(r"^(.*\d) (\d{2}(?::?\d{2})?)$")


def query_time(
    value: str | None, name: str, tz: dt.tzinfo, *, end: bool = False
) -> dt.datetime | None:
    """The instant a time query parameter means (see the module's docstring).

    ``end``: the parameter closes a range (``*_to``), so a date means the start of the
    next day. Raises :class:`InvalidInput` naming ``name``.
    """
    if value is None:
        return None
    try:
        moment = _instant(value.strip(), tz, end)
    except OverflowError:  # 0001-01-01 east of UTC, 9999-12-31 west of it
        raise InvalidInput(
            f"{name}: '{value}' falls outside the years 1-9999 once in UTC",
            errors={name: "out of range: outside the years 1-9999 in UTC"},
        ) from None
    if moment is None:
        raise InvalidInput(
            f"{name}: '{value}' is not an ISO 8601 date or time (e.g. {EXAMPLES})",
            errors={name: f"not an ISO 8601 date or time, e.g. {EXAMPLES}"},
        )
    return moment


def _instant(text: str, tz: dt.tzinfo, end: bool) -> dt.datetime | None:
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        pass
    else:
        start = dt.datetime.combine(day + dt.timedelta(days=1) if end else day, dt.time(), tz)
        return start.astimezone(dt.UTC)
    moment = _datetime(text)
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(dt.UTC)


def _datetime(text: str) -> dt.datetime | None:
    for candidate in (text, _PLUS_AS_SPACE.sub(r"\1+\2", text)):
        if "T" not in candidate.upper() and " " not in candidate:
            continue  # a bare number such as "2026" is not a time
        try:
            return dt.datetime.fromisoformat(candidate)
        except ValueError:
            continue
    return None


def iso_facts(
    proc: CompiledProcedure, facts: Mapping[str, Any] | None, tz: dt.tzinfo
) -> dict[str, Any] | None:
    """A journal entry's facts with the values of date and datetime fields as ISO 8601.

    The journal keeps the facts as the rule engine saw them (a date as its day number, an
    instant as seconds since 1970); people and integrations read ``2026-11-23`` and
    ``2026-11-23T10:00:00+08:00`` (in the company's zone) instead — for fields and for
    derived values of those types alike. Other facts stay.
    """
    if facts is None:
        return None
    out = dict(facts)
    derived = proc.derived.exprs
    for name, value in facts.items():
        fdef = proc.pack.fields.get(name)
        if fdef is not None and fdef.multiple:
            continue
        kind = fdef.type if fdef is not None else derived.get(name, (None, None))[1]
        if kind is None or isinstance(value, bool):
            continue
        try:
            if kind == "date" and isinstance(value, int):
                out[name] = dt.date.fromordinal(value).isoformat()
            elif kind == "datetime" and isinstance(value, int | float):
                out[name] = dt.datetime.fromtimestamp(value, dt.UTC).astimezone(tz).isoformat()
        except (ValueError, OverflowError, OSError):
            continue  # not a value the engine could have made: shown as stored
    return out
