"""The complete examples in docs/rule-files.md are valid: an implementer copies them."""

from __future__ import annotations

import re
from pathlib import Path

from core.runtime.plugins import installed
from core.spec.loading import load_company, load_pack

DOC = Path(__file__).resolve().parents[2] / "docs" / "rule-files.md"


def examples() -> list[str]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    return [b for b in blocks if b.startswith("kefu: 1\n")]


def test_the_example_pack_and_company_config_validate_cleanly(tmp_path: Path) -> None:
    pack_text, company_text = examples()
    pack_file = tmp_path / "repair-desk" / "procedure.yaml"
    pack_file.parent.mkdir()
    pack_file.write_text(pack_text, encoding="utf-8")
    lp, diags = load_pack(pack_file.parent, extensions=installed())
    assert lp is not None and not diags, [d.format() for d in diags]

    company_file = tmp_path / "demo.yaml"
    company_file.write_text(company_text, encoding="utf-8")
    lc, diags = load_company(company_file, {lp.key: lp}, extensions=installed())
    # K126 (no holiday data for next year yet) depends on today's date and the package
    assert lc is not None and not [d for d in diags if d.code != "K126"], [
        d.format() for d in diags
    ]
    assert set(lc.procedures) == {"repair-desk"}
