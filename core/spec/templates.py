"""Message templates: the text a ``notify:`` sends, written in the pack or the company config.

``templates: {repair.engineer-assigned: {subject: {zh-CN: …}, body: {zh-CN: …, en: …}}}``
in a pack gives the default text; the same key in a company config replaces it. Texts
are Jinja templates rendered in a sandbox (no attribute tricks, no file access), in the
company's locale, when the action queues the message — so the outbox row holds exactly
what was sent. Variables: ``case`` (number), ``step``, ``step_label``, ``company``
(name), ``to``, ``timezone`` and ``fields`` (the case's fields: ``{{ fields.engineer }}``).
Filter ``local``: a stored datetime in the company's time zone (``{{ fields.visit_at | local }}``).
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from collections.abc import Mapping
from typing import Any

from jinja2 import TemplateSyntaxError, meta, nodes, pass_context
from jinja2.sandbox import SandboxedEnvironment

VARIABLES = ("case", "step", "step_label", "company", "to", "fields", "timezone")

ENV = SandboxedEnvironment(autoescape=False, keep_trailing_newline=False)


@pass_context
def _local(ctx: Any, value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """``{{ fields.visit_at | local }}``: a stored (UTC) datetime in the company's time zone."""
    if not isinstance(value, str) or not value:
        return "" if value is None else str(value)
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        return moment.strftime(fmt)
    return moment.astimezone(zoneinfo.ZoneInfo(ctx.get("timezone") or "UTC")).strftime(fmt)


ENV.filters["local"] = _local


@functools.lru_cache(maxsize=2048)
def _compiled(source: str) -> Any:
    return ENV.from_string(source)


def problems(source: str, fields: set[str] | None) -> list[tuple[str, str, int | None]]:
    """``[(code, message, line)]`` for a template text: syntax (K140), unknown variables
    (K141), unknown ``fields.x`` (K106, when ``fields`` is given)."""
    try:
        ast = ENV.parse(source)
    except TemplateSyntaxError as exc:
        return [("K140", f"template syntax: {exc.message}", exc.lineno)]
    out: list[tuple[str, str, int | None]] = []
    for name in sorted(meta.find_undeclared_variables(ast) - set(VARIABLES)):
        out.append(
            (
                "K141",
                f"unknown template variable '{name}' (variables: {', '.join(VARIABLES)})",
                None,
            )
        )
    if fields is not None:
        for node in ast.find_all(nodes.Getattr):
            if (
                isinstance(node.node, nodes.Name)
                and node.node.name == "fields"
                and node.attr not in fields
            ):
                out.append(
                    ("K106", f"unknown field '{node.attr}' in fields.{node.attr}", node.lineno)
                )
    return out


def render(
    templates: list[Mapping[str, Any]], name: str, locale: str, context: Mapping[str, Any]
) -> dict[str, str] | None:
    """Render template ``name`` from the first mapping that has it (company, then pack).

    Returns ``{"subject": …, "body": …}`` (subject may be absent), ``None`` when no mapping
    has the template, or ``{"error": …}`` when rendering failed (the action still happens;
    the channel falls back to a plain listing).
    """
    for mapping in templates:
        tdef = mapping.get(name)
        if tdef is None:
            continue
        try:
            out = {"body": _compiled(tdef.body.text(locale)).render(**context).strip()}
            if tdef.subject is not None:
                out["subject"] = " ".join(
                    _compiled(tdef.subject.text(locale)).render(**context).split()
                )
            return out
        except Exception as exc:  # a sandbox refusal or a type error in the text
            return {"error": f"template {name}: {type(exc).__name__}: {exc}"}
    return None
