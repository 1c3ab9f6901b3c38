"""The dispatch effect's ``narrow:`` is checked when the pack loads: only strategies that
can narrow the pool (skill, region, a plugin's with a ``narrow`` method) belong there."""

from __future__ import annotations

import shutil
from pathlib import Path

from core.runtime.plugins import installed
from core.spec.catalog import load_catalog
from tests.helpers import FIXTURES

HERE = FIXTURES / "dispatch"


def test_a_strategy_that_cannot_narrow_is_K185_at_its_place(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(HERE / "rules", rules)
    pack = rules / "field-service" / "procedure.yaml"
    text = pack.read_text(encoding="utf-8")
    assert "narrow: [skill, region]" in text
    pack.write_text(text.replace("narrow: [skill, region]", "narrow: [skill, nearest, reigon]"))
    cat = load_catalog(rules, HERE / "config", extensions=installed())
    found = [d.format() for d in cat.diagnostics.errors if d.format().startswith(str(pack))]
    assert len(found) == 2, found
    k185 = next(f for f in found if " K185 " in f)
    assert "dispatch strategy 'nearest' chooses one person and cannot narrow the pool" in k185
    assert "strategies that narrow: region, skill" in k185
    assert ":61:56: K185 rules[8].then[0].dispatch.narrow[1]: " in k185  # at the entry
    k620 = next(f for f in found if " K620 " in f)
    assert "unknown dispatch strategy 'reigon'" in k620 and "did you mean 'region'?" in k620
