"""Shared by the plugin tests: the example package, fake installed distributions, a listener."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

from core import hookimpl

EXAMPLE = Path(__file__).resolve().parent / "plugins" / "kefu-example"
EXAMPLE_RULES = EXAMPLE / "kefu_example" / "rules"
KEFU = str(Path(sys.executable).parent / "kefu")

ACME = """\
kefu: 1
company: acme
name: {zh-CN: 艾克美, en: Acme}
calendar: {country: null}
departments:
  desk: {label: 客服}
  field: {label: 外勤}
roles:
  agent: {departments: [desk]}
  engineer: {departments: [field]}
people:
  amy: {name: Amy, departments: [desk]}
  ben: {name: Ben, departments: [field]}
  vic: {name: Vic, departments: [field], skills: [vip]}
procedures:
  warranty-desk: {numbering: "WD-{yyyy}-{seq:03}"}
"""


def write_config(tmp_path: Path, extra: str = "") -> Path:
    d = tmp_path / "config"
    d.mkdir(exist_ok=True)
    (d / "acme.yaml").write_text(ACME + extra, encoding="utf-8")
    return d


# -- the external plugin, end to end ----------------------------------------------------------


def fake_distribution(root: Path, package: str, entry: str, module: str, source: str) -> None:
    """An installed distribution as pip leaves it: *.dist-info with entry_points.txt, a module."""
    info = root / f"{package.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(f"[kefu]\n{entry} = {module}\n", encoding="utf-8")
    (root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")


class Listener:
    def __init__(self, fail: bool = False) -> None:
        self.seen: list[tuple[str, str, str | None, str | None]] = []
        self.fail = fail

    def _add(self, kind: str, event: Any) -> None:
        self.seen.append((kind, event.step, event.from_step, event.action))
        if self.fail:
            raise RuntimeError("listener bug")

    @hookimpl
    def kefu_case_opened(self, event: Any) -> None:
        self._add("opened", event)

    @hookimpl
    def kefu_step_entered(self, event: Any) -> None:
        self._add("step_entered", event)

    @hookimpl
    def kefu_action_done(self, event: Any) -> None:
        self._add("action_done", event)

    @hookimpl
    def kefu_case_closed(self, event: Any) -> None:
        self._add("closed", event)
