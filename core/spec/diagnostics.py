"""Diagnostics with a location, a stable code and a hint — GCC style.

    rules/repair-desk/procedure.yaml:8:11: K104 steps.triage.role: unknown role 'agnet'
        hint: roles in this pack: agent, customer, engineer (did you mean 'agent'?)

Loaders collect every problem of a run into a :class:`Diagnostics` list instead of
stopping at the first one. Lines and columns are 1-based and point at the offending key
or value (inside a condition: at the offending part of it). The codes are stable and
listed, with a fix for each, in docs/rule-files.md (tests/unit/test_docs_codes.py keeps
the two in step).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Diagnostic:
    """One problem at file:line:col, with its stable code and a hint to fix it."""

    file: str
    line: int  # 1-based
    col: int  # 1-based
    code: str
    message: str
    hint: str | None = None
    severity: Literal["error", "warning"] = "error"

    def format(self) -> str:
        sev = "" if self.severity == "error" else "warning: "
        text = f"{self.file}:{self.line}:{self.col}: {self.code} {sev}{self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


class Diagnostics(list[Diagnostic]):
    """Every problem of a run, in the order found."""

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self if d.severity == "warning"]


def yaml_value(value: Any) -> str:
    """A value as it reads in a YAML file (``2026-10-01``, ``true``, ``'high'``), not as
    Python writes it (``datetime.date(2026, 10, 1)``, ``True``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date):
        kind = "date and time" if isinstance(value, dt.datetime) else "date"
        return f"{value.isoformat()} (a {kind})"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return str(value)


def dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class YamlDoc:
    """A YAML file loaded with line/column positions kept for every key and item."""

    def __init__(self, path: Path, display: str | None = None) -> None:
        self.path = path
        self.display = display or str(path)
        self.root: Any = None

    def load(self, diags: Diagnostics) -> bool:
        yaml = YAML(typ="rt")
        # a repeated key is reported (K117) and the first one used, so that one slip
        # does not hide every other problem of the file
        yaml.Constructor = _DuplicateRecorder
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            diags.append(Diagnostic(self.display, 1, 1, "K100", f"cannot read file: {exc}"))
            return False
        try:
            self.root = yaml.load(text)
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            problem = (exc.problem or exc.context or "invalid YAML").strip()
            diags.append(
                Diagnostic(
                    self.display,
                    line,
                    col,
                    "K100",
                    f"YAML: {problem}",
                    "check indentation, quotes and the ':' after each key",
                )
            )
            return False
        except Exception as exc:  # ruamel raises several unrelated types for bad input
            diags.append(Diagnostic(self.display, 1, 1, "K100", f"YAML: {exc}"))
            return False
        if not isinstance(self.root, CommentedMap):
            diags.append(
                Diagnostic(self.display, 1, 1, "K100", "the file must be a mapping of keys")
            )
            return False
        constructor = yaml.constructor
        for mark, key, first in getattr(constructor, "duplicates", []):
            diags.append(
                Diagnostic(
                    self.display,
                    mark.line + 1,
                    mark.column + 1,
                    "K117",
                    f"duplicate key '{key}'",
                    (f"line {first} has it already, and that one is used; " if first else "")
                    + "rename or merge the two",
                )
            )
        return True

    def plain(self) -> Any:
        return _plain(self.root)

    def locate(self, loc: Iterable[str | int], *, key: bool = False) -> tuple[int, int]:
        """1-based line/col of the value at ``loc`` (its key's with ``key``), as deep as it goes."""
        node: Any = self.root
        line, col = 1, 1
        parts = list(loc)
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, CommentedMap) and part in node:
                try:
                    ln, cl = node.lc.key(part) if key and last else node.lc.value(part)
                    line, col = ln + 1, cl + 1
                except (KeyError, TypeError):
                    pass  # merged in (<<: *anchor): ruamel keeps no position; stay at the merge
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                ln, cl = node.lc.item(part)
                line, col = ln + 1, cl + 1
                node = node[part]
            else:
                break
        return line, col

    def diag(
        self,
        loc: Loc,
        code: str,
        message: str,
        hint: str | None = None,
        *,
        key: bool = False,
        severity: Literal["error", "warning"] = "error",
        col_offset: int | None = None,
    ) -> Diagnostic:
        line, col = self.locate(loc, key=key)
        if col_offset is not None:
            # point inside a one-line string value; +1 skips a quote when there is one
            node = self.value_at(loc)
            quoted = self._is_quoted(loc)
            if isinstance(node, str) and "\n" not in node:
                col += col_offset + (1 if quoted else 0)
        where = dotted(loc)
        return Diagnostic(
            self.display,
            line,
            col,
            code,
            f"{where}: {message}" if where else message,
            hint,
            severity,
        )

    def value_at(self, loc: Loc) -> Any:
        node: Any = self.root
        for part in loc:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return None
        return node

    def comma_split(self, loc: Loc) -> tuple[str, str] | None:
        """The key and whole text that an unquoted comma cut apart at ``loc``, if it did.

        In a flow mapping an ASCII comma ends the entry: ``{zh-CN: 意见, 已询问}`` is read
        as ``zh-CN: 意见`` plus a key ``已询问`` with no value. For such a key (``loc``),
        this returns the key before it and the text as meant: ``("zh-CN", "意见, 已询问")``.
        """
        parent = self.value_at(loc[:-1]) if loc else None
        if not isinstance(parent, CommentedMap) or not parent.fa.flow_style():
            return None
        keys = list(parent)
        if loc[-1] not in keys or parent[loc[-1]] is not None:
            return None
        start = keys.index(loc[-1])
        while start > 0 and parent[keys[start - 1]] is None:
            start -= 1  # several commas: go back to the key that holds the first part
        end = start
        while end < len(keys) and parent[keys[end]] is None:
            end += 1
        if start == 0 or not isinstance(parent[keys[start - 1]], str):
            return None
        text = ", ".join([str(parent[keys[start - 1]]), *map(str, keys[start:end])])
        return str(keys[start - 1]), text

    def _is_quoted(self, loc: Loc) -> bool:
        return isinstance(self.value_at(loc), DoubleQuotedScalarString | SingleQuotedScalarString)


class _DuplicateRecorder(RoundTripConstructor):
    """Keeps the first of repeated mapping keys and records the others (one parse only)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.duplicates: list[tuple[Any, str, int | None]] = []

    def check_mapping_key(
        self, node: Any, key_node: Any, mapping: Any, key: Any, value: Any
    ) -> bool:
        if key not in mapping:
            return True
        first: int | None = None
        try:
            first = mapping.lc.key(key)[0] + 1
        except (AttributeError, KeyError, TypeError):  # positions are kept on CommentedMaps only
            pass
        self.duplicates.append((key_node.start_mark, str(key), first))
        return False


def _plain(node: Any) -> Any:
    if isinstance(node, CommentedMap):
        return {str(k) if not isinstance(k, str) else k: _plain(v) for k, v in node.items()}
    if isinstance(node, CommentedSeq):
        return [_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool | int | float) or node is None:
        return node
    # ruamel scalar subclasses (ScalarFloat, etc.) and dates: keep the Python value
    if hasattr(node, "__float__") and not isinstance(node, str):
        return float(node)
    return node
