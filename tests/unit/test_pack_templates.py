"""Every message a bundled pack sends has a text in that pack (rules/<pack> templates:)."""

from __future__ import annotations

from typing import Any

import pytest

from core.runtime.plugins import installed
from core.spec.catalog import ROOT, pack_dirs
from core.spec.loading import load_pack

PACKS = pack_dirs(ROOT / "rules")


def notify_templates(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        notify = node.get("notify")
        if isinstance(notify, dict) and isinstance(notify.get("template"), str):
            found.add(notify["template"])
        for value in node.values():
            found |= notify_templates(value)
    elif isinstance(node, list):
        for value in node:
            found |= notify_templates(value)
    return found


@pytest.mark.parametrize("pack_dir", PACKS, ids=[p.name for p in PACKS])
def test_every_notify_has_a_text(pack_dir: Any) -> None:
    lp, diags = load_pack(pack_dir, extensions=installed())
    assert lp is not None and not diags.errors
    used = notify_templates(lp.raw)
    missing = sorted(used - set(lp.pack.templates))
    assert not missing, f"{pack_dir.name}: notify templates without a text: {missing}"
    unused = sorted(set(lp.pack.templates) - used)
    assert not unused, f"{pack_dir.name}: texts no notify uses: {unused}"
