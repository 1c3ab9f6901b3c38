"""Message templates: the text a ``notify:`` sends, written in the pack or the company config.

``templates: {repair.engineer-assigned: {subject: {zh-CN: …}, body: {zh-CN: …, en: …}}}``
in a pack gives the default text; the same key in a company config replaces it. Texts
are Jinja templates rendered in a sandbox (no attribute tricks, no file access), in the
company's locale.

**Rendered outside the action's transaction, within limits.** The action queues the
message with the template's text and its variables (:func:`queued`); the text is rendered
from them after commit (:func:`render_queued`: by the worker before delivery, and when
the outbox is read), so a slow template never holds the write lock another company waits
for. Each render stops after :data:`MAX_SECONDS` of work or :data:`MAX_OUTPUT`
characters, ``range`` gives at most :data:`MAX_RANGE` numbers, and ``*``/``**`` refuse
results beyond the output limit (``'x' * 50000000`` is refused before it is built).
What :func:`problems` can see in the text itself — a number constant beyond
:data:`MAX_CONSTANT`, loops nested deeper than :data:`MAX_LOOP_DEPTH` — is refused when
the pack or company is validated (K142).

Variables: ``case`` (number), ``step``, ``step_label``, ``company`` (name), ``to``,
``timezone`` and ``fields`` (the case's fields: ``{{ fields.engineer }}``).
Filter ``local``: a stored datetime in the company's time zone (``{{ fields.visit_at | local }}``).
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
import sys
import time
import zoneinfo
from collections.abc import Mapping
from typing import Any

from jinja2 import TemplateSyntaxError, meta, nodes, pass_context
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

VARIABLES = ("case", "step", "step_label", "company", "to", "fields", "timezone")
MAX_SECONDS = 0.5  # of work per render (subject and body together)
MAX_OUTPUT = 20_000  # characters per rendered text
MAX_RANGE = 1_000  # numbers one range() may give
MAX_CONSTANT = 10_000  # the largest number a template may write
MAX_LOOP_DEPTH = 2  # loops inside loops


class TemplateLimit(Exception):
    """A render went past its time or output limit."""


class _BoundedEnvironment(SandboxedEnvironment):
    """The sandbox with ``*`` and ``**`` checked before they compute (the sandbox alone
    would build a 50 MB string, or a number of a million digits, in one C call)."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    if len(seq) * max(times, 0) > MAX_OUTPUT:
                        raise SecurityError(f"'*' would make more than {MAX_OUTPUT} items")
            return operator.mul(left, right)
        if isinstance(right, int | float) and abs(right) > 64:
            raise SecurityError("'**' with an exponent above 64")
        return operator.pow(left, right)


def _range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise SecurityError(f"range() of more than {MAX_RANGE} numbers")
    return numbers


def bounded_environment(*, autoescape: bool) -> SandboxedEnvironment:
    """A sandbox with the limits of this module (``*``/``**`` checked, ``range()`` of at
    most :data:`MAX_RANGE` numbers), for every template kefu renders (records too)."""
    env = _BoundedEnvironment(autoescape=autoescape, keep_trailing_newline=False)
    env.globals["range"] = _range
    return env


ENV = bounded_environment(autoescape=False)


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
    for const in ast.find_all(nodes.Const):
        value = const.value
        if isinstance(value, int | float) and not isinstance(value, bool):
            if abs(value) > MAX_CONSTANT:
                out.append(
                    (
                        "K142",
                        f"the number {value:g} is above the template limit of {MAX_CONSTANT}",
                        const.lineno,
                    )
                )
        elif isinstance(value, str) and len(value) > MAX_OUTPUT:
            out.append(
                ("K142", f"a text constant longer than {MAX_OUTPUT} characters", const.lineno)
            )
    for loop in ast.find_all(nodes.For):
        depth = _loop_depth(loop)
        if depth > MAX_LOOP_DEPTH:
            out.append(
                ("K142", f"loops nested {depth} deep (at most {MAX_LOOP_DEPTH})", loop.lineno)
            )
            break
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


def _loop_depth(loop: nodes.For) -> int:
    inner = [_loop_depth(n) for n in loop.find_all(nodes.For) if n is not loop]
    return 1 + max(inner, default=0)


def _bounded(source: str, context: Mapping[str, Any], deadline: float) -> str:
    """Render a message text within the deadline and :data:`MAX_OUTPUT`."""
    return render_bounded(_compiled(source), context, deadline, MAX_OUTPUT, MAX_SECONDS)


def render_bounded(
    template: Any, context: Mapping[str, Any], deadline: float, max_output: int, seconds: float
) -> str:
    """Render ``template`` (of a :func:`bounded_environment`) by ``deadline`` (a
    ``time.monotonic()`` instant, ``seconds`` after the start) and within ``max_output``
    characters, or raise :class:`TemplateLimit`: the output is taken chunk by chunk, and
    a trace function stops template code that loops without writing."""
    previous = sys.gettrace()
    count = 0

    def tracer(_frame: Any, _event: str, _arg: Any) -> Any:
        nonlocal count
        count += 1
        if count % 256 == 0 and time.monotonic() > deadline:
            raise TemplateLimit(f"rendering took more than {seconds:g} s")
        return tracer

    parts: list[str] = []
    size = 0
    sys.settrace(tracer)
    try:
        for chunk in template.generate(**context):
            size += len(chunk)
            if size > max_output:
                raise TemplateLimit(f"the text is longer than {max_output} characters")
            if time.monotonic() > deadline:
                raise TemplateLimit(f"rendering took more than {seconds:g} s")
            parts.append(chunk)
    finally:
        sys.settrace(previous)
    return "".join(parts)


def queued(
    templates: list[Mapping[str, Any]], name: str, locale: str, context: Mapping[str, Any]
) -> dict[str, Any] | None:
    """What an outbox row keeps to render template ``name`` later: the text of the first
    mapping that has it (company, then pack) in ``locale``, and the variables. None when
    no mapping has it."""
    for mapping in templates:
        tdef = mapping.get(name)
        if tdef is None:
            continue
        return {
            "name": name,
            "body": tdef.body.text(locale),
            "subject": tdef.subject.text(locale) if tdef.subject is not None else None,
            "context": dict(context),
        }
    return None


def render_queued(spec: Mapping[str, Any]) -> dict[str, str]:
    """Render what :func:`queued` kept: ``{"subject": …, "body": …}`` (subject may be
    absent), or ``{"error": …}`` when the sandbox refused or a limit was reached (the
    channel then sends a plain listing)."""
    context = dict(spec.get("context") or {})
    deadline = time.monotonic() + MAX_SECONDS
    try:
        out = {"body": _bounded(str(spec["body"]), context, deadline).strip()}
        if spec.get("subject") is not None:
            out["subject"] = " ".join(_bounded(str(spec["subject"]), context, deadline).split())
        return out
    except Exception as exc:  # a sandbox refusal, a limit, or a type error in the text
        return {"error": f"template {spec.get('name')}: {type(exc).__name__}: {exc}"}


QUEUED = "queued_text"  # the payload key of what :func:`queued` kept


def with_text(payload: Mapping[str, Any]) -> dict[str, Any]:
    """An outbox payload as channels and readers see it: the queued template rendered
    into ``subject``/``body`` (or ``error``), the queued text itself left out."""
    out = {k: v for k, v in payload.items() if k != QUEUED}
    spec = payload.get(QUEUED)
    if isinstance(spec, Mapping):
        out.update(render_queued(spec))
    return out


def render(
    templates: list[Mapping[str, Any]], name: str, locale: str, context: Mapping[str, Any]
) -> dict[str, str] | None:
    """Render template ``name`` from the first mapping that has it (company, then pack).

    Returns ``{"subject": …, "body": …}`` (subject may be absent), ``None`` when no mapping
    has the template, or ``{"error": …}`` when rendering failed (the action still happens;
    the channel falls back to a plain listing).
    """
    spec = queued(templates, name, locale, context)
    return None if spec is None else render_queued(spec)
