"""Field types: validating form input, storing it as JSON, turning it into facts.

Each kind has one coercer used by every entry point (API, web forms, scenarios, rule
``set`` effects), so a value is judged the same way wherever it comes from. Stored values
are JSON-native: dates as ``YYYY-MM-DD``, datetimes as ISO-8601 in UTC.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from collections.abc import Callable
from typing import Any, Protocol

from core.rules.expr import FieldType
from core.rules.ir import Scalar
from core.spec.definitions import FieldDef

PHONE_RE = re.compile(r"\+?[0-9][0-9 \-()]{4,24}")
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# an integer without a declared range still has one: what a JSON number keeps exactly
INT_LIMIT = 2**53 - 1
TEXT_MAX = 2000
LONGTEXT_MAX = 50_000


class FieldValueError(ValueError):
    """A form value that does not fit its field (the message says why)."""


def _text(limit: int) -> Callable[[FieldDef, Any], Any]:
    def coerce(f: FieldDef, v: Any) -> Any:
        if not isinstance(v, str):
            raise FieldValueError("expected text")
        v = v.strip()
        if not v:
            return None
        cap = f.max_length or limit
        if len(v) > cap:
            raise FieldValueError(f"longer than {cap} characters")
        return v

    return coerce


def _number(integer: bool) -> Callable[[FieldDef, Any], Any]:
    def coerce(f: FieldDef, v: Any) -> Any:
        if isinstance(v, bool):
            raise FieldValueError("expected a number")
        if isinstance(v, str):
            try:
                v = float(v) if not integer else int(v)
            except ValueError:
                raise FieldValueError("expected a number") from None
        if not isinstance(v, int | float) or (isinstance(v, float) and not math.isfinite(v)):
            raise FieldValueError("expected a number")
        if integer and isinstance(v, float):
            if not v.is_integer():
                raise FieldValueError("expected a whole number")
            v = int(v)
        if isinstance(v, int) and not -INT_LIMIT <= v <= INT_LIMIT:
            raise FieldValueError(f"must be between {-INT_LIMIT} and {INT_LIMIT}")
        if f.min is not None and v < f.min:
            raise FieldValueError(f"must be at least {f.min:g}")
        if f.max is not None and v > f.max:
            raise FieldValueError(f"must be at most {f.max:g}")
        return v

    return coerce


def _boolean(f: FieldDef, v: Any) -> Any:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false", "yes", "no", "1", "0", "on", "off"):
        return v.lower() in ("true", "yes", "1", "on")
    raise FieldValueError("expected true or false")


def _date(f: FieldDef, v: Any) -> Any:
    if isinstance(v, dt.datetime):
        raise FieldValueError("expected a date (YYYY-MM-DD)")
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, str):
        try:
            return dt.date.fromisoformat(v.strip()).isoformat()
        except ValueError:
            pass
    raise FieldValueError("expected a date (YYYY-MM-DD)")


def _datetime(f: FieldDef, v: Any) -> Any:
    if isinstance(v, str):
        try:
            v = dt.datetime.fromisoformat(v.strip())
        except ValueError:
            raise FieldValueError(
                "expected a date and time with offset, e.g. 2026-10-08T09:00+08:00"
            ) from None
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            raise FieldValueError("a date and time needs a UTC offset, e.g. +08:00")
        try:
            return v.astimezone(dt.UTC).isoformat()
        except OverflowError:  # 0001-01-01 east of UTC, 9999-12-31 west of it
            raise FieldValueError("out of range: the instant falls outside years 1-9999") from None
    raise FieldValueError("expected a date and time")


def _choice(f: FieldDef, v: Any) -> Any:
    choices = f.choices or {}
    values = v if isinstance(v, list) else [v]
    if not f.multiple and isinstance(v, list):
        raise FieldValueError("expected one choice")
    for item in values:
        if not isinstance(item, str) or item not in choices:
            raise FieldValueError(f"{item!r} is not one of: {', '.join(choices)}")
    return values if f.multiple else v


def _pattern(regex: re.Pattern[str], what: str) -> Callable[[FieldDef, Any], Any]:
    def coerce(f: FieldDef, v: Any) -> Any:
        # spaces around are trimmed (as forms send them); a line break is no part of one
        if not isinstance(v, str) or not regex.fullmatch(v.strip(" ")):
            raise FieldValueError(f"not a valid {what}")
        return v.strip(" ")

    return coerce


def _person(f: FieldDef, v: Any) -> Any:
    if not isinstance(v, str) or not re.match(r"^[a-z][a-z0-9_.-]{0,63}$", v):
        raise FieldValueError("expected a user name")
    return v


def _upload_ref(v: Any) -> dict[str, int]:
    """One uploaded file named by its id (``12``, ``"12"`` or ``{"id": 12, …}`` as the API
    returns it). Only the id counts: the case service fills in the file's hash, size and
    type from the upload itself (core.cases.attachments), whatever else was sent."""
    if isinstance(v, dict):
        v = v.get("id")
    if isinstance(v, str) and v.strip().isdigit():
        v = int(v.strip())
    if isinstance(v, bool) or not isinstance(v, int) or not 0 < v < 2**62:
        raise FieldValueError("expected the id of an uploaded file (POST /api/v1/attachments)")
    return {"id": v}


def _attachment(f: FieldDef, v: Any) -> Any:
    if not f.multiple:
        return _upload_ref(v)
    values = v if isinstance(v, list) else [v]
    refs = [_upload_ref(x) for x in values]
    if len({r["id"] for r in refs}) != len(refs):
        raise FieldValueError("the same file is listed twice")
    if f.max_files is not None and len(refs) > f.max_files:
        raise FieldValueError(f"takes at most {f.max_files} file(s), has {len(refs)}")
    return refs


COERCERS: dict[str, Callable[[FieldDef, Any], Any]] = {
    "text": _text(TEXT_MAX),
    "longtext": _text(LONGTEXT_MAX),
    "number": _number(False),
    "money": _number(False),
    "integer": _number(True),
    "boolean": _boolean,
    "date": _date,
    "datetime": _datetime,
    "choice": _choice,
    "phone": _pattern(PHONE_RE, "phone number"),
    "email": _pattern(EMAIL_RE, "email address"),
    "person": _person,
    "attachment": _attachment,
}


class FieldKind(Protocol):
    """A field type from a plugin (``kefu_field_types``).

    ``name``: the ``type:`` written in packs. ``fact_kind``: how conditions see the value
    (``number``, ``integer``, ``text``, ``boolean``, ``date``…). ``options_model``
    (optional): a pydantic model for the field's ``options:``. ``coerce(fdef, value)``:
    validate form input, return the stored JSON value or raise :class:`FieldValueError`.
    ``fact(fdef, stored)``: the scalar conditions compare (``None``: no value).
    ``json_schema(fdef)``: the JSON schema of the input, for the API's forms.
    """

    name: str
    fact_kind: str

    def coerce(self, fdef: FieldDef, value: Any) -> Any: ...

    def fact(self, fdef: FieldDef, stored: Any) -> Scalar | None: ...

    def json_schema(self, fdef: FieldDef) -> dict[str, Any]: ...


def coerce(fdef: FieldDef, value: Any, current: Any = None) -> Any:
    """Validate ``value`` for ``fdef`` and return its stored form (``None`` = no value).

    ``current`` is the field's stored value before this change: a list field takes one
    item (a mapping) as "add it" or, with its ``id``, "update it", relative to it.
    """
    if value is None:
        return None
    if fdef.type == "list":
        return coerce_list(fdef, value, current)
    kind = fdef.plugin_kind
    if kind is not None:
        return kind.coerce(fdef, value)
    return COERCERS[fdef.type](fdef, value)


def coerce_list(fdef: FieldDef, value: Any, current: Any = None) -> list[dict[str, Any]]:
    """A list field's items: the whole list (items with an ``id`` keep it, the others get
    new ids; a kept item keeps the files of attachment fields it does not name), or one
    item to add (no ``id``) or update (its ``id``; ``null`` clears a sub-field). Ids are
    whole numbers, never reused while the list holds a larger one."""
    old = [it for it in current if isinstance(it, dict)] if isinstance(current, list) else []
    old_ids = {it.get("id") for it in old}
    next_id = max((it["id"] for it in old if isinstance(it.get("id"), int)), default=0) + 1
    if isinstance(value, dict):
        items = [dict(it) for it in old]
        if "id" in value:
            at = next(
                (i for i, it in enumerate(items) if _same_id(it.get("id"), value["id"])), None
            )
            if at is None:
                raise FieldValueError(f"there is no item {value['id']!r} to update")
            item = {**items[at], **_item(fdef, value, f"item {value['id']}", partial=True)}
            items[at] = {k: v for k, v in item.items() if v is not None}
            _required(fdef, items[at], f"item {value['id']}")
        else:
            items.append({"id": next_id, **_item(fdef, value, "the new item")})
    elif isinstance(value, list):
        items, seen = [], set()
        for n, raw in enumerate(value, start=1):
            if not isinstance(raw, dict):
                raise FieldValueError(f"item {n}: expected a mapping of the item's fields")
            iid = raw.get("id")
            if iid is not None and (
                not any(_same_id(o, iid) for o in old_ids) or iid in seen or isinstance(iid, bool)
            ):
                raise FieldValueError(f"item {n}: there is no item {iid!r} (or it is listed twice)")
            kept: dict[str, Any] = {}
            if iid is None:
                iid, next_id = next_id, next_id + 1
            else:  # files cannot travel back through a form: unnamed, an item keeps them
                before = next(it for it in old if _same_id(it.get("id"), iid))
                kept = {
                    sub: before[sub]
                    for sub, sdef in (fdef.of or {}).items()
                    if sdef.type == "attachment" and sub not in raw and sub in before
                }
            seen.add(iid)
            items.append({"id": iid, **kept, **_item(fdef, raw, f"item {n}")})
    else:
        raise FieldValueError("expected a list of items, or one item (a mapping) to add or update")
    if fdef.min_items is not None and len(items) < fdef.min_items:
        raise FieldValueError(f"needs at least {fdef.min_items} item(s), has {len(items)}")
    if fdef.max_items is not None and len(items) > fdef.max_items:
        raise FieldValueError(f"takes at most {fdef.max_items} item(s), has {len(items)}")
    return items


def _same_id(a: Any, b: Any) -> bool:
    """Item ids are whole numbers: ``true`` is not item 1, ``"1"`` is not either."""
    return type(a) is int and type(b) is int and a == b


def item_changes(old: Any, new: Any) -> dict[str, list[Any]]:
    """Which items of a list field a change added, updated and removed (by id)."""
    before = {it.get("id"): it for it in old or () if isinstance(it, dict)}
    after = {it.get("id"): it for it in new or () if isinstance(it, dict)}
    out = {
        "added": [i for i in after if i not in before],
        "updated": [i for i in after if i in before and after[i] != before[i]],
        "removed": [i for i in before if i not in after],
    }
    return {k: v for k, v in out.items() if v}


def _item(fdef: FieldDef, raw: dict[str, Any], where: str, partial: bool = False) -> dict[str, Any]:
    subs = fdef.of or {}
    out: dict[str, Any] = {}
    for name, v in raw.items():
        if name == "id":
            continue
        sub = subs.get(str(name))
        if sub is None:
            raise FieldValueError(f"{where}: unknown field '{name}' (fields: {', '.join(subs)})")
        try:
            out[str(name)] = coerce(sub, v)
        except FieldValueError as exc:
            raise FieldValueError(f"{where}: {name}: {exc}") from None
        if out[str(name)] is None and not partial:
            del out[str(name)]
    if not partial:
        _required(fdef, out, where)
    return out


def _required(fdef: FieldDef, item: dict[str, Any], where: str) -> None:
    for name in fdef.require:
        if item.get(name) is None:
            raise FieldValueError(f"{where}: {name}: required")


def fact_value(fdef: FieldDef, stored: Any) -> Scalar | None:
    """The scalar a rule compares for a stored value (see core.rules.ir.encode_value)."""
    if stored is None or (fdef.multiple and isinstance(stored, list)):
        return None
    kind = fdef.plugin_kind
    if kind is not None:
        return kind.fact(fdef, stored)
    return _builtin_fact(fdef.type, stored)


def _builtin_fact(type_: str, stored: Any) -> Scalar | None:
    if type_ == "date":
        return dt.date.fromisoformat(stored).toordinal()
    if type_ == "datetime":
        moment = dt.datetime.fromisoformat(stored)
        return int((moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)).total_seconds())
    if type_ == "attachment" and isinstance(stored, dict):
        return stored.get("sha256")  # conditions see the file's hash (set or not)
    if isinstance(stored, bool | int | float | str):
        return stored
    return None


def fact_reader(fdef: FieldDef) -> Callable[[Any], Scalar | None]:
    """:func:`fact_value` for one field, decided once: the function turning its stored
    values into facts (rules read every field of a case on every action)."""
    if fdef.plugin_kind is not None or fdef.multiple:
        return functools.partial(fact_value, fdef)
    if fdef.type in _CONVERTED:  # (the field's plugin kind, a pydantic attribute, is None)
        type_ = fdef.type
        return lambda stored: None if stored is None else _builtin_fact(type_, stored)
    return _stored_scalar


_CONVERTED = frozenset(("date", "datetime", "attachment"))
_SCALARS = frozenset((bool, int, float, str))


def _stored_scalar(stored: Any) -> Scalar | None:
    if stored.__class__ in _SCALARS:
        return stored  # type: ignore[return-value]  # one of _SCALARS
    return stored if isinstance(stored, bool | int | float | str) else None


def field_type(fdef: FieldDef) -> FieldType:
    kind = fdef.plugin_kind
    if kind is not None:
        return FieldType(kind=kind.fact_kind, choices=())
    if fdef.type == "list":
        return FieldType("list", of=tuple((n, field_type(s)) for n, s in (fdef.of or {}).items()))
    return FieldType(
        kind=fdef.type if not fdef.multiple else "multiple", choices=tuple(fdef.choices or ())
    )
