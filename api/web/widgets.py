"""Field types → form widgets: how each field is drawn and how what was typed is read back.

A widget only translates between HTML inputs and the values the API takes (a
``datetime-local`` input becomes an ISO time with the company's offset, a yes/no select
a boolean, an editable table a list of items); it never judges a value. Every value goes
to the case service, which validates it with the same coercers as the API
(``core.spec.forms.coerce_fields``) and answers field by field.

Inputs are named ``f.<field>`` (a list field's cells ``f.<field>.<row>.<sub-field>``, the
row's item id ``f.<field>.<row>.id``; an attachment field's file input ``f.<field>.file``,
see :mod:`api.web.uploads`), so a field can never collide with the form's own
``_csrf`` and ``_version``. A plugin field type without a widget of its own gets the
``json`` widget (a text area taking the JSON its ``json_schema`` describes); a plugin
may give its type a widget with :func:`register_widget`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import InvalidInput
from core.spec.definitions import FieldDef

PREFIX = "f."
EXTRA_ROWS = 2  # empty rows an editable table offers for new items


class Missing:
    """Nothing typed for the field: the form leaves it as it is."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = Missing()

#: what was typed, by input name (several values for check boxes)
Typed = Mapping[str, list[str]]


@dataclass(frozen=True)
class Widget:
    """How a field type is drawn (``macro`` of templates/widgets.html) and read back."""

    macro: str
    read: Callable[[FieldDef, str, Typed, dt.tzinfo], Any]
    # the stored value as the input shows it
    show: Callable[[FieldDef, Any, dt.tzinfo], Any] = field(
        default=lambda f, v, tz: "" if v is None else str(v)
    )


def _first(typed: Typed, name: str) -> str | None:
    values = typed.get(name)
    return values[0] if values else None


def _scalar(f: FieldDef, name: str, typed: Typed, tz: dt.tzinfo) -> Any:
    raw = _first(typed, name)
    if raw is None or raw.strip() == "":
        return MISSING
    return raw


def _boolean(f: FieldDef, name: str, typed: Typed, tz: dt.tzinfo) -> Any:
    raw = _first(typed, name)
    if raw in (None, ""):
        return MISSING
    return {"true": True, "false": False}.get(raw, raw)  # anything else: the coercer says why


def _show_boolean(f: FieldDef, v: Any, tz: dt.tzinfo) -> str:
    return "" if v is None else ("true" if v else "false")


def _datetime(f: FieldDef, name: str, typed: Typed, tz: dt.tzinfo) -> Any:
    raw = _first(typed, name)
    if raw is None or raw.strip() == "":
        return MISSING
    try:
        moment = dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        return raw  # the coercer names the problem
    if moment.tzinfo is None:  # a datetime-local input: the company's wall clock
        moment = moment.replace(tzinfo=tz)
    return moment.isoformat()


def _show_datetime(f: FieldDef, v: Any, tz: dt.tzinfo) -> str:
    if not isinstance(v, str) or not v:
        return ""
    try:
        return dt.datetime.fromisoformat(v).astimezone(tz).strftime("%Y-%m-%dT%H:%M")
    except ValueError:
        return v


def _choice(f: FieldDef, name: str, typed: Typed, tz: dt.tzinfo) -> Any:
    values = [v for v in typed.get(name, []) if v != ""]
    if f.multiple:
        # a hidden marker says the check boxes were on the form: none ticked clears them
        return values if values or typed.get(name + "._shown") else MISSING
    return values[0] if values else MISSING


def _show_choice(f: FieldDef, v: Any, tz: dt.tzinfo) -> Any:
    if f.multiple:
        return list(v) if isinstance(v, list) else []
    return "" if v is None else str(v)


def _json(f: FieldDef, name: str, typed: Typed, tz: dt.tzinfo) -> Any:
    raw = _first(typed, name)
    if raw is None or raw.strip() == "":
        return MISSING
    try:
        return json.loads(raw)
    except ValueError:
        return raw  # the field type's coercer says what it expects


def _show_json(f: FieldDef, v: Any, tz: dt.tzinfo) -> str:
    return "" if v is None else json.dumps(v, ensure_ascii=False)


def _attachment(f: FieldDef, name: str, typed: Typed, tz: dt.tzinfo) -> Any:
    """Upload ids (api.web.uploads turned the form's files and signed ids into them): a
    single field takes the latest file chosen; a multiple one the ticked current files
    and the new ones, unless nothing changed."""
    new = [v for v in typed.get(name + ".new", []) if v.isdigit()]
    if not f.multiple:
        return new[-1] if new else MISSING
    keep = [v for v in typed.get(name + ".keep", []) if v.isdigit()]
    had = [v for v in (_first(typed, name + "._had") or "").split(",") if v.isdigit()]
    if not new and sorted(keep) == sorted(had):
        return MISSING
    return keep + new


def _list(f: FieldDef, name: str, typed: Typed, tz: dt.tzinfo) -> Any:
    """The whole list: kept rows (with their item id) and filled new rows, in row order."""
    rows = row_indexes(typed, name)
    if not rows and not typed.get(name + "._shown"):
        return MISSING
    items = []
    for n in rows:
        prefix = f"{name}.{n}."
        if _first(typed, prefix + "remove"):
            continue
        item: dict[str, Any] = {}
        for sub_name, sub in (f.of or {}).items():
            value = widget_for(sub).read(sub, prefix + sub_name, typed, tz)
            if value is not MISSING:
                item[sub_name] = value
        iid = _first(typed, prefix + "id")
        if iid:
            item["id"] = int(iid) if iid.isdigit() else iid
        elif not item:
            continue  # an empty new row
        items.append(item)
    return items


def row_indexes(keys: Iterable[str], name: str) -> list[int]:
    """The rows of the list field input ``name`` (``f.<field>``) that the posted input
    names ``keys`` mention (``f.<field>.<row>.…``), in order; an index of six digits or
    more is no row a page drew."""
    base = name + "."
    return sorted(
        {
            int(row)
            for k in keys
            if k.startswith(base)
            for row in (k[len(base) :].partition(".")[0],)
            if row.isdigit() and len(row) < 6
        }
    )


WIDGETS: dict[str, Widget] = {
    "text": Widget("text", _scalar),
    "longtext": Widget("textarea", _scalar),
    "number": Widget("number", _scalar),
    "money": Widget("number", _scalar),
    "integer": Widget("integer", _scalar),
    "boolean": Widget("boolean", _boolean, _show_boolean),
    "date": Widget("date", _scalar),
    "datetime": Widget("datetime", _datetime, _show_datetime),
    "choice": Widget("choice", _choice, _show_choice),
    "phone": Widget("tel", _scalar),
    "email": Widget("email", _scalar),
    "person": Widget("person", _scalar),
    "attachment": Widget("file", _attachment, lambda f, v, tz: v),
    "list": Widget("table", _list, lambda f, v, tz: v if isinstance(v, list) else []),
}
JSON_WIDGET = Widget("json", _json, _show_json)


def register_widget(field_type: str, widget: Widget) -> None:
    """Draw ``field_type`` (e.g. a plugin's ``signature``) with ``widget`` from now on."""
    WIDGETS[field_type] = widget


def widget_for(f: FieldDef) -> Widget:
    """The widget of a field: its type's, else the JSON text area (plugin types)."""
    return WIDGETS.get(f.type, JSON_WIDGET)


def read_form(
    fields: Mapping[str, FieldDef], names: list[str], typed: Typed, tz: dt.tzinfo
) -> dict[str, Any]:
    """The values the form's inputs give for ``names``, as the API takes them; a field
    left empty is not sent (the case keeps its value; a required one is reported).

    A NUL character in an input is refused here, naming the field (InvalidInput), as the
    API refuses it at its edge: PostgreSQL cannot store one, and no value needs one."""
    bad = {
        (key[len(PREFIX) :].split(".", 1)[0] if key.startswith(PREFIX) else key)
        for key, values in typed.items()
        if any("\x00" in v for v in values)
    }
    if bad:
        raise InvalidInput(
            "the form has errors",
            errors={name: "contains a NUL character" for name in sorted(bad)},
        )
    out = {}
    for name in names:
        f = fields[name]
        value = widget_for(f).read(f, PREFIX + name, typed, tz)
        if value is not MISSING:
            out[name] = value
    return out


@dataclass
class Row:
    """One row of an editable table: the item's id (None: a new row) and its cells."""

    index: int
    id: Any
    cells: dict[str, Any]
    removed: bool = False


def table_rows(
    f: FieldDef, name: str, stored: Any, typed: Typed | None, tz: dt.tzinfo
) -> list[Row]:
    """The rows a list field's table shows: what was typed (after a refusal), else the
    stored items, then :data:`EXTRA_ROWS` empty rows for new items."""
    subs = f.of or {}
    rows: list[Row] = []
    base = PREFIX + name + "."
    if typed is not None and any(k.startswith(base) for k in typed):
        for n in row_indexes(typed, PREFIX + name):
            p = f"{base}{n}."
            rows.append(
                Row(
                    n,  # the row's inputs keep their names, so its files match them
                    _first(typed, p + "id") or None,
                    {s: (typed.get(p + s) or [""])[0] for s in subs},
                    bool(_first(typed, p + "remove")),
                )
            )
        return rows
    for item in stored if isinstance(stored, list) else []:
        if isinstance(item, dict):
            rows.append(
                Row(
                    len(rows),
                    item.get("id"),
                    {s: widget_for(sub).show(sub, item.get(s), tz) for s, sub in subs.items()},
                )
            )
    for _ in range(EXTRA_ROWS):
        rows.append(Row(len(rows), None, {s: "" for s in subs}))
    return rows
