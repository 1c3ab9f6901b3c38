"""Condition expressions: parse with an allow-list, type-check, compile to the IR.

Implementers write conditions such as::

    category == "quality" and (line_stopped or affected_qty >= 100)
    urgency in ["high", "medium"] and not in_scope
    received_on >= date("2026-10-01")

The text is parsed with :func:`ast.parse` in ``eval`` mode and walked by a visitor that
accepts only: ``and``/``or``/``not``, comparisons (chained too), ``in``/``not in`` a list
of literals, ``is None``/``is not None``, field names, literals (strings, numbers,
``true``/``false``/``null`` and their Python spellings), ``param.<name>`` and
``date("YYYY-MM-DD")`` / ``datetime("YYYY-MM-DDTHH:MM[:SS]+08:00")``, and derived values:
the functions of :data:`core.rules.derive.FUNCTIONS`, ``+ - * /`` on numbers, ``now`` and
``today``, ``actor.<…>``, two values compared, and ``any/all/count/sum`` over a list
field's items. Anything else — other calls and attributes, ``%``, subscripts, lambdas,
comprehensions, ``:=`` — is a diagnostic (K203) at its own column, never evaluated. There
is no ``eval``.

A comparison the engine cannot make by itself (it compares one fact with a constant)
registers a derived value (:class:`core.rules.derive.Derivations`): the IR then compares
that value's fact with a constant, and the value is computed in Python before each
evaluation — ``days_between(a, b) <= 15`` becomes ``_days_between_a_b <= 15``, ``qty >
limit`` becomes ``_qty_gt_limit == true``.

Every name is checked against the declared fields and every literal against the field's
type (a choice field only accepts one of its choices), so a misspelt field or value is a
load-time error with a hint, not a rule that silently never fires.

``not`` has no IR node: :func:`negate` pushes it down to the comparisons (De Morgan).
A comparison on a field without a value is false, so its negation is true: ``not
urgency == "high"`` holds for a case whose urgency is not set, exactly like ``urgency !=
"high" or urgency is None``. Write ``urgency != "high"`` to require a value.

Columns in :class:`ExprError` are 0-based *character* offsets into the condition text
(Python's AST counts UTF-8 bytes; a Chinese literal before the problem would shift it).
"""

from __future__ import annotations

import ast
import datetime as dt
import difflib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from core.rules.derive import AGGREGATES, FUNCTIONS, TEXT_KINDS, Derivations, VExpr
from core.rules.ir import NEGATED_OP, TRUE, Cond, Scalar, encode_value

NUMBER_KINDS = frozenset({"number", "integer", "money"})
ORDERED_KINDS = NUMBER_KINDS | {"date", "datetime"}

_AST_OPS = {
    ast.Eq: "eq",
    ast.NotEq: "ne",
    ast.Lt: "lt",
    ast.LtE: "le",
    ast.Gt: "gt",
    ast.GtE: "ge",
}
_FLIPPED = {"eq": "eq", "ne": "ne", "lt": "gt", "le": "ge", "gt": "lt", "ge": "le"}
_NAMED_CONSTANTS = {
    "true": True,
    "false": False,
    "null": None,
    "True": True,
    "False": False,
    "None": None,
}

#: the kind of a field whose definition is broken (the loader reports that problem):
#: conditions using it are checked for their shape only, so one mistake is one diagnostic
UNKNOWN_KIND: Final = "unknown"


class _Unknown:
    """The value of a parameter whose definition is broken (reported elsewhere)."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()

#: what a construct outside the allow-list is called in a diagnostic
_CONSTRUCTS: dict[type[ast.AST], str] = {
    ast.Call: "a function call",
    ast.Attribute: "attribute access",
    ast.Subscript: "a subscript ([...] after a value)",
    ast.Slice: "a slice",
    ast.Lambda: "a lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a generator expression",
    ast.NamedExpr: "an assignment (:=)",
    ast.BinOp: "arithmetic",
    ast.IfExp: "an if-else expression",
    ast.Dict: "a mapping ({...})",
    ast.JoinedStr: "an f-string",
    ast.FormattedValue: "an f-string",
    ast.Starred: "unpacking (*)",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}


@dataclass(frozen=True)
class FieldType:
    """What the type checker needs to know of a field: its kind and, for choices, the choices."""

    kind: str
    choices: tuple[str, ...] = ()
    of: tuple[tuple[str, FieldType], ...] = ()  # a list field's sub-fields


class ExprError(Exception):
    """A problem in an expression; ``col`` is a 0-based offset into the expression text."""

    def __init__(self, code: str, message: str, col: int = 0, hint: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.col = col
        self.hint = hint

    def __repr__(self) -> str:
        return f"ExprError({self.code!r}, {self.message!r}, col={self.col})"


def did_you_mean(word: str, options: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return close[0] if close else None


def _options_hint(what: str, word: str, options: Sequence[str]) -> str:
    shown = ", ".join(sorted(options)[:20]) + (", …" if len(options) > 20 else "")
    guess = did_you_mean(word, options)
    return f"{what}: {shown}" + (f" (did you mean '{guess}'?)" if guess else "")


#: deepest nesting of a condition or value (parentheses, not, and/or, calls): far beyond
#: any written procedure, far below the depth at which Python's own parser gives up
MAX_DEPTH = 100


def parse_condition(
    text: str,
    fields: Mapping[str, FieldType],
    params: Mapping[str, Scalar | _Unknown] | None = None,
    derived: Derivations | None = None,
) -> Cond:
    """Parse ``text`` into IR, checking names and literal types against ``fields``.

    ``params`` are the pack's parameters (``param.x``) with their values for one
    company; :data:`UNKNOWN` marks a declared parameter whose value cannot be used.
    Comparisons on derived values (``days_between(a, b) <= 15``, ``qty > limit``,
    ``actor.username != author``) register that value in ``derived`` (see
    :mod:`core.rules.derive`) and compare its fact with a constant.
    Raises :class:`ExprError` (codes K201–K214) on the first problem in this expression;
    the loader collects the problems of every expression in a run.
    """
    if not isinstance(text, str) or not text.strip():
        raise ExprError(
            "K201", "empty condition", 0, 'write a condition such as: urgency == "high"'
        )
    compiler, tree, lead = _parse(text, fields, params, derived)
    try:
        return compiler.cond(tree.body)
    except ExprError as exc:
        exc.col += lead
        raise


def parse_value(
    text: str,
    fields: Mapping[str, FieldType],
    params: Mapping[str, Scalar | _Unknown] | None = None,
    derived: Derivations | None = None,
) -> tuple[VExpr, str]:
    """Parse a derived value (``days_between(shipped_on, found_on)``): its expression and
    its kind (``integer``, ``number``, ``money``, ``date``, ``datetime``, ``boolean``, …)."""
    if not isinstance(text, str) or not text.strip():
        raise ExprError("K201", "empty value", 0, "write e.g. days_between(shipped_on, found_on)")
    compiler, tree, lead = _parse(text, fields, params, derived)
    try:
        if isinstance(tree.body, ast.Compare | ast.BoolOp) or (
            isinstance(tree.body, ast.UnaryOp) and isinstance(tree.body.op, ast.Not)
        ):
            cond = compiler.cond(tree.body)
            return {"cond": cond, "kind": "boolean"}, "boolean"
        return compiler.vexpr(tree.body)
    except ExprError as exc:
        exc.col += lead
        raise


def parse_item_condition(
    text: str,
    items: Mapping[str, FieldType],
    params: Mapping[str, Scalar | _Unknown] | None = None,
) -> tuple[Cond, list[list[Any]]]:
    """Parse a condition on one item of a list field, whose fields are ``items`` (what
    ``any(list, <condition>)`` tests for each item): its IR and the values it derives per
    item (``[[name, value expression], …]``, e.g. for ``qty > limit``), computed on each
    item before the condition is tested (:func:`core.rules.derive.item_matches`)."""
    if not isinstance(text, str) or not text.strip():
        raise ExprError("K201", "empty condition", 0, 'write a condition such as: status == "open"')
    compiler, tree, lead = _parse(text, items, params, None)
    try:
        cond = compiler.cond(tree.body)
    except ExprError as exc:
        exc.col += lead
        raise
    return cond, [[n, e] for n, (e, _) in compiler.derived.exprs.items()]


def _parse(
    text: str,
    fields: Mapping[str, FieldType],
    params: Mapping[str, Scalar | _Unknown] | None,
    derived: Derivations | None,
) -> tuple[_Compiler, ast.Expression, int]:
    lead = len(text) - len(text.lstrip())
    body = text.strip()
    try:
        try:
            with warnings.catch_warnings():
                # "invalid decimal literal" and the like: the text is judged below, and a
                # warning printed by Python's parser would not say which file it is in
                warnings.simplefilter("ignore", SyntaxWarning)
                tree = ast.parse(body, mode="eval")
        except SyntaxError as exc:
            # SyntaxError counts characters (1-based) on its line
            col = min(_line_start(body, exc.lineno or 1) + max((exc.offset or 1) - 1, 0), len(body))
            hint = 'conditions look like: urgency == "high" and not in_scope'
            if body[col : col + 1] == "=" and body[col : col + 2] != "==":
                hint = "compare with == (a single = assigns, which conditions cannot do)"
            if "too many nested" in str(exc.msg):
                raise _too_deep(0) from None
            raise ExprError("K201", f"syntax error: {exc.msg}", col, hint) from None
        except (RecursionError, MemoryError):
            # CPython's parser gives up on very deep input (MemoryError: "parser stack
            # overflowed"): that is a condition nobody can read, not a crash
            raise _too_deep(0) from None
        _check_depth(tree)
        compiler = _Compiler(body, fields, params or {}, derived or Derivations())
        compiler.check_allowed(tree)
        return compiler, tree, lead
    except ExprError as exc:
        exc.col += lead
        raise


def _too_deep(col: int) -> ExprError:
    return ExprError(
        "K213",
        f"the expression is nested more than {MAX_DEPTH} levels deep",
        col,
        "flatten it: not not x is x, and a and (b and c) is a and b and c; "
        "or split it over several rules",
    )


def _check_depth(tree: ast.AST) -> None:
    """Refuse nesting beyond MAX_DEPTH, without recursion (the compiler recurses)."""
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _too_deep(getattr(node, "col_offset", 0) or 0)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _line_start(text: str, lineno: int) -> int:
    """Character offset of the start of 1-based line ``lineno`` in ``text``."""
    return sum(len(line) + 1 for line in text.split("\n")[: max(lineno - 1, 0)])


def _is_date_call(node: ast.Call) -> bool:
    return (
        isinstance(node.func, ast.Name)
        and node.func.id in ("date", "datetime")
        and len(node.args) == 1
        and not node.keywords
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    )


def _is_param(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "param"
    )


def _is_actor(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "actor"
    )


_ARITH_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_SETS = {"roles": "actor_role", "departments": "actor_department"}
#: names that mean a moment unless the pack has a field of that name
_MOMENTS = {"now": "datetime", "today": "date"}


def _a(kind: str) -> str:
    return ("an " if kind[:1] in "aeiou" else "a ") + kind


def _comparable(a: str, b: str) -> bool:
    if a in NUMBER_KINDS and b in NUMBER_KINDS:
        return True
    if a in TEXT_KINDS and b in TEXT_KINDS:
        return True
    return a == b


class _AnyKind(dict[str, FieldType]):
    """The sub-fields of a list whose definition is broken: every name is known."""

    def __contains__(self, key: object) -> bool:
        return True

    def get(self, key: str, default: Any = None) -> FieldType:
        return FieldType(UNKNOWN_KIND)

    def __getitem__(self, key: str) -> FieldType:
        return FieldType(UNKNOWN_KIND)


class _Compiler:
    def __init__(
        self,
        text: str,
        fields: Mapping[str, FieldType],
        params: Mapping[str, Scalar | _Unknown],
        derived: Derivations,
    ) -> None:
        self.lines = text.split("\n")
        self.text = text
        self.fields = fields
        self.params = params
        self.derived = derived

    def col(self, node: ast.AST) -> int:
        """Character offset of ``node`` in the text (the AST counts UTF-8 bytes per line)."""
        lineno = getattr(node, "lineno", 1) or 1
        byte_col = getattr(node, "col_offset", 0) or 0
        line = self.lines[lineno - 1] if 0 < lineno <= len(self.lines) else ""
        return _line_start(self.text, lineno) + len(
            line.encode()[:byte_col].decode(errors="ignore")
        )

    # -- the allow-list ----------------------------------------------------------------
    def check_allowed(self, tree: ast.Expression) -> None:
        """Reject, at its own column, the outermost construct outside the allow-list."""
        for node in ast.walk(tree):  # breadth first: outer constructs come first
            what = _CONSTRUCTS.get(type(node))
            if isinstance(node, ast.Call) and _is_date_call(node):
                continue
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and (node.func.id in FUNCTIONS or node.func.id in AGGREGATES)
                and not node.keywords
            ):
                continue
            if _is_param(node) or _is_actor(node):
                continue
            if isinstance(node, ast.BinOp) and type(node.op) in _ARITH_OPS:
                continue
            if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Invert | ast.UAdd):
                what = f"the operator '{'~' if isinstance(node.op, ast.Invert) else '+'}'"
            if isinstance(node, ast.Constant) and not (
                node.value is None or isinstance(node.value, str | int | float | bool)
            ):
                what = f"a {type(node.value).__name__} literal"
            if isinstance(node, ast.Name) and node.id.startswith("__"):
                what = f"the name '{node.id}'"
            if what is not None:
                hint = "conditions use field names, literals, comparisons, in [...], and/or/not"
                if isinstance(node, ast.Call):
                    hint = (
                        f"the functions are {', '.join(FUNCTIONS)}, "
                        'date("2026-10-01") and datetime("2026-10-08T09:00+08:00")'
                    )
                elif isinstance(node, ast.Attribute):
                    hint = (
                        "the dotted names are the pack's parameters (param.<name>) "
                        "and who acts (actor.username, actor.roles, actor.departments)"
                    )
                elif isinstance(node, ast.BinOp):
                    hint = "arithmetic is + - * / on numbers"
                raise ExprError(
                    "K203", f"{what} is not allowed in a condition", self.col(node), hint
                )

    # -- boolean structure -------------------------------------------------------------
    def cond(self, node: ast.expr) -> Cond:
        if isinstance(node, ast.BoolOp):
            key = "and" if isinstance(node.op, ast.And) else "or"
            parts: list[Cond] = []
            for value in node.values:
                sub = self.cond(value)
                # flatten a and (b and c) so the engine sees one level
                parts.extend(sub[key] if key in sub else [sub])
            return {key: parts}
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return negate(self.cond(node.operand))
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("any", "all")
        ):
            expr, kind = self.aggregate(node, node.func.id)
            name = self.derived.add(expr, kind, ast.get_source_segment(self.text, node))
            return {"cmp": "eq", "field": name, "value": True}
        if isinstance(node, ast.Name):
            if node.id in _NAMED_CONSTANTS:
                constant = _NAMED_CONSTANTS[node.id]
                if isinstance(constant, bool):
                    return TRUE if constant else {"or": []}
                raise ExprError(
                    "K204",
                    "null alone is not a condition",
                    self.col(node),
                    "write: field is None / field is not None",
                )
            ftype = self.field(node)
            if ftype.kind == "boolean":
                return {"cmp": "eq", "field": node.id, "value": True}
            # a bare non-boolean field means "has a value"
            return {"set": node.id}
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            return TRUE if node.value else {"or": []}
        if _is_param(node):
            raise ExprError(
                "K204",
                "a parameter alone is not a condition",
                self.col(node),
                "compare it with a field: satisfaction <= param.low_satisfaction",
            )
        if isinstance(node, ast.Constant | ast.UnaryOp | ast.Call | ast.List | ast.Tuple | ast.Set):
            raise ExprError(
                "K204",
                "a value alone is not a condition",
                self.col(node),
                'compare a field with it: urgency == "high"',
            )
        raise self.unsupported(node)

    def compare(self, node: ast.Compare) -> Cond:
        left = node.left
        parts: list[Cond] = []
        for op, right in zip(node.ops, node.comparators, strict=True):
            parts.append(self.compare_pair(left, op, right, node))
            left = right
        return parts[0] if len(parts) == 1 else {"and": parts}

    def compare_pair(
        self, left: ast.expr, op: ast.cmpop, right: ast.expr, whole: ast.Compare
    ) -> Cond:
        if isinstance(op, ast.Is | ast.IsNot):
            if not self.is_none(right):
                raise ExprError(
                    "K203",
                    "'is' only compares with None",
                    self.col(right),
                    "write: field is None / field is not None",
                )
            name, _ = self.subject(left)
            return {"unset": name} if isinstance(op, ast.Is) else {"set": name}
        if isinstance(op, ast.In | ast.NotIn) and _is_actor(right):
            member = self.actor_member(left, right)
            return member if isinstance(op, ast.In) else negate(member)
        if isinstance(op, ast.In | ast.NotIn):
            name, ftype = self.subject(left)
            if not isinstance(right, ast.List | ast.Tuple | ast.Set):
                raise ExprError(
                    "K203",
                    "'in' needs a list of values",
                    self.col(right),
                    'write: urgency in ["high", "medium"]',
                )
            values = [self.literal(v, name, ftype) for v in right.elts]
            alternatives: Cond = {"or": [{"cmp": "eq", "field": name, "value": v} for v in values]}
            return alternatives if isinstance(op, ast.In) else negate(alternatives)
        kind = _AST_OPS.get(type(op))
        if kind is None:  # pragma: no cover - every ast.cmpop is handled above
            raise self.unsupported(whole)
        if self.is_department(left) or self.is_department(right):
            if kind not in ("eq", "ne"):
                raise self.actor_error(whole, "actor.department is compared with == or !=")
            member = self.actor_member(
                right if self.is_department(left) else left,
                left if self.is_department(left) else right,
            )
            return member if kind == "eq" else negate(member)
        left_is_value = not self.is_literal(left)
        right_is_value = not self.is_literal(right)
        if left_is_value and right_is_value:
            return self.compare_values(left, kind, right, whole)
        if not left_is_value and not right_is_value:
            raise ExprError(
                "K204",
                "a comparison needs a field on one side",
                self.col(whole),
                "write: field == value",
            )
        if right_is_value:
            left, right, kind = right, left, _FLIPPED[kind]
        name, ftype = self.subject(left)
        if self.is_none(right):
            if kind == "eq":
                return {"unset": name}
            if kind == "ne":
                return {"set": name}
            raise ExprError(
                "K205",
                "only == and != compare with null",
                self.col(right),
                "write: field is None / field is not None",
            )
        value = self.literal(right, name, ftype)
        if kind not in ("eq", "ne") and ftype.kind not in ORDERED_KINDS | {UNKNOWN_KIND}:
            raise ExprError(
                "K205",
                f"field '{name}' is a {ftype.kind}; it has no order",
                self.col(whole),
                "use == / != / in for text, choice and boolean fields",
            )
        return {"cmp": kind, "field": name, "value": value}

    # -- derived values ------------------------------------------------------------------
    def is_literal(self, node: ast.expr) -> bool:
        """A constant side of a comparison (as opposed to a field or a derived value)."""
        if isinstance(node, ast.Constant):
            return True
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return self.is_literal(node.operand)
        if isinstance(node, ast.Name):
            return node.id in _NAMED_CONSTANTS or (
                node.id == "param" and "param" not in self.fields
            )
        if _is_param(node):
            return True
        if isinstance(node, ast.Call) and _is_date_call(node):
            return True
        return isinstance(node, ast.List | ast.Tuple | ast.Set | ast.Dict)

    def is_department(self, node: ast.expr) -> bool:
        return _is_actor(node) and isinstance(node, ast.Attribute) and node.attr == "department"

    def subject(self, node: ast.expr) -> tuple[str, FieldType]:
        """The fact a comparison tests: a field, or a derived value registered for it."""
        if isinstance(node, ast.Name) and node.id in self.fields:
            return self.field_name(node), self.fields[node.id]
        if self.is_literal(node):
            return self.field_name(node), FieldType(UNKNOWN_KIND)  # raises K204
        expr, kind = self.vexpr(node)
        if "field" in expr:
            return expr["field"], self.fields.get(expr["field"], FieldType(kind))
        name = self.derived.add(expr, kind, ast.get_source_segment(self.text, node))
        return name, FieldType(kind)

    def compare_values(self, left: ast.expr, kind: str, right: ast.expr, whole: ast.expr) -> Cond:
        """Two values compared (``qty > limit``, ``actor.username != author``): a derived
        boolean fact, true or false when both have a value."""
        a, akind = self.vexpr(left)
        b, bkind = self.vexpr(right)
        if UNKNOWN_KIND not in (akind, bkind):
            if not _comparable(akind, bkind):
                raise ExprError(
                    "K210",
                    f"cannot compare {_a(akind)} with {_a(bkind)}",
                    self.col(whole),
                    "compare values of one type: numbers with numbers, dates with dates, "
                    "text and people with text and people",
                )
            if kind not in ("eq", "ne") and akind not in ORDERED_KINDS:
                raise ExprError(
                    "K205",
                    f"a {akind} has no order",
                    self.col(whole),
                    "use == / != for text, choice, person and boolean values",
                )
        expr = {"compare": kind, "args": [a, b], "kind": "boolean"}
        name = self.derived.add(expr, "boolean", ast.get_source_segment(self.text, whole))
        return {"cmp": "eq", "field": name, "value": True}

    def actor_member(self, value: ast.expr, container: ast.expr) -> Cond:
        """``"x" in actor.roles`` / ``actor.department == "x"``: a derived boolean fact."""
        assert isinstance(container, ast.Attribute)
        attr = "departments" if container.attr == "department" else container.attr
        if attr not in _SETS:
            raise self.actor_error(container, f"actor.{container.attr} is not a set of names")
        if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
            raise self.actor_error(value, f'name the {attr[:-1]} in quotes: "x" in actor.{attr}')
        key = _SETS[attr]
        expr = {key: value.value, "kind": "boolean"}
        name = self.derived.add(expr, "boolean", f"actor_{attr[:-1]}_{value.value}")
        return {"cmp": "eq", "field": name, "value": True}

    def actor_error(self, node: ast.AST, message: str) -> ExprError:
        return ExprError(
            "K212",
            message,
            self.col(node),
            'write actor.username == "li", "quality_manager" in actor.roles, '
            'actor.department == "quality" or actor.username != author',
        )

    def vexpr(self, node: ast.expr) -> tuple[VExpr, str]:
        """A value expression and its kind (see core.rules.derive)."""
        if isinstance(node, ast.Name) and node.id not in self.fields and node.id in _MOMENTS:
            return {node.id: True, "kind": _MOMENTS[node.id]}, _MOMENTS[node.id]
        if isinstance(node, ast.Name) and node.id not in _NAMED_CONSTANTS:
            ftype = self.field(node)
            kind = ftype.kind
            return {"field": node.id, "kind": kind}, kind
        if _is_actor(node):
            assert isinstance(node, ast.Attribute)
            if node.attr == "username":
                return {"actor": "username", "kind": "person"}, "person"
            if node.attr in ("roles", "departments", "department"):
                raise self.actor_error(
                    node, f"actor.{node.attr} holds several names: test one of them"
                )
            raise self.actor_error(node, f"unknown actor attribute '{node.attr}'")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            if self.is_literal(node):
                return self.const(node)
            inner, kind = self.vexpr(node.operand)
            self.need_number(node.operand, kind, "'-'")
            return {"neg": inner, "kind": kind}, kind
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH_OPS:
            op = _ARITH_OPS[type(node.op)]
            a, akind = self.vexpr(node.left)
            b, bkind = self.vexpr(node.right)
            self.need_number(node.left, akind, f"'{op}'")
            self.need_number(node.right, bkind, f"'{op}'")
            if op == "/":
                kind = "number"
            elif "money" in (akind, bkind):
                kind = "money"
            elif akind == bkind == "integer":
                kind = "integer"
            else:
                kind = "number"
            return {"arith": op, "args": [a, b], "kind": kind}, kind
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and (node.func.id in FUNCTIONS)
        ):
            return self.call(node, node.func.id)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and (node.func.id in AGGREGATES)
        ):
            return self.aggregate(node, node.func.id)
        if self.is_literal(node):
            return self.const(node)
        raise self.unsupported(node)

    def aggregate(self, node: ast.Call, fn: str) -> tuple[VExpr, str]:
        """``any(defects, status != "fixed")``, ``all(…)``, ``count(defects[, cond])``,
        ``sum(parts, cost)``: over the items of a list field."""
        usage = (
            'write any(defects, status != "fixed"), all(defects, status == "fixed"), '
            'count(defects), count(defects, severity == "high") or sum(parts, cost)'
        )
        arity = {"any": (2,), "all": (2,), "count": (1, 2), "sum": (2,)}[fn]
        if len(node.args) not in arity or node.keywords:
            raise ExprError(
                "K214",
                f"{fn}() takes {' or '.join(map(str, arity))} arguments",
                self.col(node),
                usage,
            )
        first = node.args[0]
        ftype = self.fields.get(first.id) if isinstance(first, ast.Name) else None
        if ftype is None or ftype.kind not in ("list", UNKNOWN_KIND):
            raise ExprError(
                "K214",
                f"the first argument of {fn}() is a list field",
                self.col(first),
                usage,
            )
        assert isinstance(first, ast.Name)
        subs = dict(ftype.of)
        if ftype.kind == UNKNOWN_KIND:
            subs = _AnyKind()
        expr: VExpr = {"items": fn, "list": first.id}
        if fn == "sum":
            sub = node.args[1]
            if not isinstance(sub, ast.Name) or sub.id not in subs:
                raise ExprError(
                    "K214",
                    "sum() adds up one of the items' fields",
                    self.col(sub),
                    _options_hint("fields of each item", getattr(sub, "id", ""), list(subs)),
                )
            kind = subs[sub.id].kind
            if kind not in NUMBER_KINDS and kind != UNKNOWN_KIND:
                raise ExprError(
                    "K210", f"sum() adds numbers; '{sub.id}' is {_a(kind)}", self.col(sub)
                )
            return {**expr, "sub": sub.id, "kind": kind}, kind
        if len(node.args) == 2:
            inner = _Compiler(self.text, subs, self.params, Derivations())
            expr["where"] = inner.cond(node.args[1])
            if inner.derived.exprs:  # per item: due_on < today, owner == actor.username
                expr["per_item"] = [[n, e] for n, (e, _) in inner.derived.exprs.items()]
        kind = "integer" if fn == "count" else "boolean"
        return {**expr, "kind": kind}, kind

    def call(self, node: ast.Call, fn: str) -> tuple[VExpr, str]:
        wants, result, _ = FUNCTIONS[fn]
        if len(node.args) != len(wants) or node.keywords:
            raise ExprError(
                "K210",
                f"{fn} takes {len(wants)} argument{'s' if len(wants) > 1 else ''}",
                self.col(node),
                "e.g. days_between(shipped_on, found_on), working_days_between(opened_on, "
                "today), hours_since(reported_at), days_since(delivered_on)",
            )
        args = []
        for arg, allowed in zip(node.args, wants, strict=True):
            expr, kind = self.vexpr(arg)
            if kind not in allowed and kind != UNKNOWN_KIND:
                raise ExprError(
                    "K210",
                    f"{fn} needs a {' or '.join(sorted(allowed))}, not {_a(kind)}",
                    self.col(arg),
                    "pass a date or datetime field, now or today",
                )
            args.append(expr)
        return {"call": fn, "args": args, "kind": result}, result

    def need_number(self, node: ast.expr, kind: str, what: str) -> None:
        if kind not in NUMBER_KINDS and kind != UNKNOWN_KIND:
            raise ExprError(
                "K210",
                f"{what} needs numbers; this is {_a(kind)}",
                self.col(node),
                "arithmetic is on number, integer and money values; "
                "for dates use days_between(a, b)",
            )

    def const(self, node: ast.expr) -> tuple[VExpr, str]:
        value = self.raw_literal(node)
        if isinstance(value, _Unknown):
            return {"const": 0, "kind": UNKNOWN_KIND}, UNKNOWN_KIND
        if isinstance(value, bool):
            return {"const": value, "kind": "boolean"}, "boolean"
        if isinstance(value, int):
            return {"const": value, "kind": "integer"}, "integer"
        if isinstance(value, float):
            return {"const": value, "kind": "number"}, "number"
        if isinstance(value, str):
            return {"const": value, "kind": "text"}, "text"
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                raise ExprError("K206", "a datetime needs a UTC offset", self.col(node))
            return {"const": encode_value(value), "kind": "datetime"}, "datetime"
        if isinstance(value, dt.date):
            return {"const": encode_value(value), "kind": "date"}, "date"
        raise ExprError(
            "K204",
            "null is not a value to compute with",
            self.col(node),
            "test for no value with: field is None",
        )

    # -- names and literals ------------------------------------------------------------
    def is_field(self, node: ast.expr) -> bool:
        return (
            isinstance(node, ast.Name)
            and node.id not in _NAMED_CONSTANTS
            and not (node.id == "param" and "param" not in self.fields)
        )

    @staticmethod
    def is_none(node: ast.expr) -> bool:
        return (isinstance(node, ast.Constant) and node.value is None) or (
            isinstance(node, ast.Name) and node.id in ("None", "null")
        )

    def field_name(self, node: ast.expr) -> str:
        if not self.is_field(node):
            raise ExprError(
                "K204",
                "expected a field name here",
                self.col(node),
                "the field goes left of 'in' and 'is': urgency in [\"high\"]",
            )
        assert isinstance(node, ast.Name)
        self.field(node)
        return node.id

    def field(self, node: ast.Name) -> FieldType:
        ftype = self.fields.get(node.id)
        if ftype is None:
            if node.id == "param":
                raise ExprError(
                    "K208",
                    "'param' alone is not a value",
                    self.col(node),
                    "name the parameter: param.<name>",
                )
            raise ExprError(
                "K202",
                f"unknown field '{node.id}'",
                self.col(node),
                _options_hint("fields you can use", node.id, list(self.fields)),
            )
        if ftype.kind == "list":
            raise ExprError(
                "K214",
                f"field '{node.id}' is a list; test its items",
                self.col(node),
                f'write any({node.id}, <item field> == "x"), count({node.id}) > 0, '
                f"all({node.id}, …) or sum({node.id}, <number field>)",
            )
        if ftype.kind == "multiple":
            raise ExprError(
                "K209",
                f"field '{node.id}' holds several values; conditions cannot test it",
                self.col(node),
                "use a single-choice field, or a rule per value",
            )
        return ftype

    def literal(self, node: ast.expr, name: str, ftype: FieldType) -> Scalar:
        value = self.raw_literal(node)
        where = self.col(node)
        kind = ftype.kind
        if isinstance(value, _Unknown) or kind == UNKNOWN_KIND:
            # a broken definition (reported by the loader): keep the shape, skip the types
            return value if isinstance(value, str | int | float) else 0
        if kind == "boolean":
            if not isinstance(value, bool):
                raise ExprError(
                    "K206",
                    f"field '{name}' is a boolean; compare it with true or false",
                    where,
                    f"write: {name} (it is true) or not {name}",
                )
            return value
        if kind in NUMBER_KINDS:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ExprError(
                    "K206",
                    f"field '{name}' is a number; {value!r} is not",
                    where,
                    "write numbers without quotes: affected_qty >= 100",
                )
            return value
        if kind in ("date", "datetime"):
            if isinstance(value, str):
                try:
                    value = (
                        dt.date.fromisoformat(value)
                        if kind == "date"
                        else dt.datetime.fromisoformat(value)
                    )
                except ValueError:
                    raise ExprError(
                        "K206",
                        f"field '{name}' is a {kind}; {value!r} is not one",
                        where,
                        'write dates as "2026-10-01"',
                    ) from None
            if kind == "date" and isinstance(value, dt.datetime):
                value = value.date()
            if (
                kind == "datetime"
                and not isinstance(value, dt.datetime)
                and isinstance(value, dt.date)
            ):
                value = dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC)
            if not isinstance(value, dt.date):
                raise ExprError(
                    "K206",
                    f"field '{name}' is a {kind}; {value!r} is not one",
                    where,
                    'write date("2026-10-01") or datetime("2026-10-08T09:00+08:00")',
                )
            if isinstance(value, dt.datetime) and value.tzinfo is None:
                raise ExprError(
                    "K206",
                    f"datetime for '{name}' needs a UTC offset",
                    where,
                    'write datetime("2026-10-08T09:00+08:00")',
                )
            encoded = encode_value(value)
            assert encoded is not None
            return encoded
        # string-like kinds
        if not isinstance(value, str):
            raise ExprError(
                "K206",
                f"field '{name}' is {kind}; compare it with a quoted string",
                where,
                f'write: {name} == "..."',
            )
        if kind == "choice" and ftype.choices and value not in ftype.choices:
            raise ExprError(
                "K207",
                f"'{value}' is not a choice of '{name}'",
                where,
                _options_hint("choices", value, ftype.choices),
            )
        return value

    def raw_literal(self, node: ast.expr) -> object:
        if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float | bool):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = self.raw_literal(node.operand)
            if isinstance(inner, int | float) and not isinstance(inner, bool):
                return -inner
        if isinstance(node, ast.Name) and node.id in _NAMED_CONSTANTS:
            return _NAMED_CONSTANTS[node.id]
        if isinstance(node, ast.Attribute) and _is_param(node):
            # a pack parameter, fixed per company when the procedure is compiled
            if node.attr not in self.params:
                raise ExprError(
                    "K208",
                    f"unknown parameter '{node.attr}'",
                    self.col(node),
                    _options_hint("parameters of this pack", node.attr, list(self.params)),
                )
            return self.params[node.attr]
        if isinstance(node, ast.Call) and _is_date_call(node):
            assert isinstance(node.func, ast.Name) and isinstance(node.args[0], ast.Constant)
            text = str(node.args[0].value)
            try:
                if node.func.id == "date":
                    return dt.date.fromisoformat(text)
                return dt.datetime.fromisoformat(text)
            except ValueError:
                raise ExprError(
                    "K206",
                    f"not a valid {node.func.id}: {text!r}",
                    self.col(node),
                    'write date("2026-10-01") or datetime("2026-10-08T09:00+08:00")',
                ) from None
        if isinstance(node, ast.Name) and node.id == "param" and "param" not in self.fields:
            raise ExprError(
                "K208",
                "'param' alone is not a value",
                self.col(node),
                "name the parameter: param.<name>",
            )
        if self.is_field(node):
            raise ExprError(
                "K204",
                "a condition compares a field with a value, not two fields",
                self.col(node),
                "rules see one case's facts at a time; compare with a literal",
            )
        raise ExprError(
            "K203",
            "expected a literal value here",
            self.col(node),
            'values are "text", numbers, true/false, null, date("2026-10-01"), param.<name>',
        )

    def unsupported(self, node: ast.AST) -> ExprError:
        what = _CONSTRUCTS.get(type(node), f"'{type(node).__name__}'")
        return ExprError(
            "K203",
            f"{what} is not allowed in a condition",
            self.col(node),
            "conditions use field names, literals, comparisons, in [...], and/or/not",
        )


def negate(cond: Cond) -> Cond:
    """The exact logical negation of ``cond`` without a ``not`` node.

    A comparison on an unset field is false, so ``not (x == 1)`` holds when x is unset
    *or* differs: it becomes ``x is unset or x != 1``. Nested groups of the same kind
    are flattened, so ``not (a and b)`` is one ``or`` group, not nested ``or`` groups.
    """
    if "and" in cond:
        return _flat("or", [negate(c) for c in cond["and"]])
    if "or" in cond:
        return _flat("and", [negate(c) for c in cond["or"]])
    if "set" in cond:
        return {"unset": cond["set"]}
    if "unset" in cond:
        return {"set": cond["unset"]}
    if "cmp" in cond:
        name = cond["field"]
        flipped = {"cmp": NEGATED_OP[cond["cmp"]], "field": name, "value": cond["value"]}
        return {"or": [{"unset": name}, flipped]}
    if cond.get("true") is True:
        return {"or": []}
    raise ValueError(f"not an IR condition: {cond!r}")


def _flat(key: str, parts: list[Cond]) -> Cond:
    out: list[Cond] = []
    for part in parts:
        out.extend(part[key] if key in part else [part])
    return {key: out}
