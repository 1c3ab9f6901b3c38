"""The hooks reference stays honest (datasette's tests/test_docs.py pattern).

Fails when docs/hooks.md is stale, when a hook's docstring does not say when it is called
and what it returns, or when a hook has no test named ``test_hook_<name without kefu_>``.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from core import hookspecs
from core.runtime import hookdocs

ROOT = Path(__file__).resolve().parents[2]
HOOKS = [name for _, names in hookdocs.hooks() for name in names]


def test_every_hookspec_is_in_a_phase() -> None:
    declared = sorted(
        n for n, _ in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("kefu_")
    )
    assert sorted(HOOKS) == declared and len(declared) >= 11


def test_the_reference_is_generated_from_the_docstrings() -> None:
    assert hookdocs.main(["--check"]) == 0, (
        "docs/hooks.md is stale: run python -m core.runtime.hookdocs"
    )
    text = (ROOT / "docs" / "hooks.md").read_text(encoding="utf-8")
    for name in HOOKS:
        assert f"### `{name}(" in text


@pytest.mark.parametrize("name", HOOKS)
def test_each_hook_says_when_it_is_called_and_what_it_returns(name: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert "Called" in doc, f"{name}: say when it is called"
    assert "Return" in doc or "return value" in doc, f"{name}: say what its return value means"


def _test_names() -> set[str]:
    names = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_hook_"):
                names.add(node.name)
    return names


@pytest.mark.parametrize("name", HOOKS)
def test_each_hook_has_a_test(name: str) -> None:
    short = name.removeprefix("kefu_")
    assert any(
        t == f"test_hook_{short}" or t.startswith(f"test_hook_{short}_") for t in _test_names()
    ), f"write test_hook_{short} for {name}"


def test_plugins_guide_links_every_hook() -> None:
    text = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    missing = [n for n in HOOKS if n not in text]
    assert not missing, f"docs/plugins.md does not mention {missing}"
