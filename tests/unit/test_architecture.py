"""The shape of core/: layers (checked by import-linter) and no import cycle at all.

A cycle kept alive by imports inside functions is still a cycle; this walks the module
graph grimp builds (the same one import-linter checks), leaving out imports that only a
type checker follows, and fails naming the modules of every cycle it finds.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v) & modules:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in sorted(modules):
        if m not in index:
            visit(m)
    return out


def test_core_has_no_import_cycle() -> None:
    graph = grimp.build_graph("core", exclude_type_checking_imports=True)
    # a package imports its own modules' names through __init__ only for re-export
    modules = {m for m in graph.modules if m.startswith("core")}
    assert _cycles(graph, modules) == []


def test_a_cycle_is_found_when_there_is_one() -> None:
    """The checker itself: a graph with a -> b -> a is reported."""
    graph = grimp.ImportGraph()
    for m in ("x", "x.a", "x.b", "x.c"):
        graph.add_module(m)
    graph.add_import(importer="x.a", imported="x.b")
    graph.add_import(importer="x.b", imported="x.a")
    graph.add_import(importer="x.c", imported="x.a")
    assert _cycles(graph, {"x.a", "x.b", "x.c"}) == [["x.a", "x.b"]]


def _has_reason(lines: list[str], i: int) -> bool:
    """A comment on the import's line, or above the block of imports it belongs to."""
    if "#" in lines[i]:
        return True
    j = i - 1
    while j >= 0:
        text = lines[j].strip()
        if text.startswith("#"):
            return True
        if not text or text.startswith(("import ", "from ", ")")) or text.endswith(","):
            j -= 1
            continue
        return False
    return False


def test_imports_inside_functions_say_why() -> None:
    """An import inside a function hides a dependency: each carries its reason beside it."""
    bare = []
    for path in sorted((ROOT / "core").rglob("*.py")):
        if "migrations" in path.parts:
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        tree = ast.parse("\n".join(lines))
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    if not _has_reason(lines, node.lineno - 1):
                        line = lines[node.lineno - 1].strip()
                        bare.append(f"{path.relative_to(ROOT)}:{node.lineno}: {line}")
    assert bare == [], "imports inside functions without a reason:\n" + "\n".join(bare)
