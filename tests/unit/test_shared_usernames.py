"""K143: one username given to two different people in two company files would make them
one login with one password; one person working for two companies is fine."""

from __future__ import annotations

from pathlib import Path

from core.runtime.plugins import installed
from core.spec.catalog import load_catalog

COMPANY = """kefu: 1
company: {key}
name: {{zh-CN: {key}, en: {key}}}
departments:
  quality: {{label: 品质部}}
people:
  pan: {{name: 潘伟, departments: [quality]}}
  xu: {{name: {xu}, departments: [quality]}}
calendar: {{country: null}}
"""


def catalog(tmp_path: Path, east_xu: str, north_xu: str) -> list[str]:
    config = tmp_path / "config"
    config.mkdir()
    (tmp_path / "rules").mkdir()
    (config / "east.yaml").write_text(COMPANY.format(key="east", xu=east_xu), encoding="utf-8")
    (config / "north.yaml").write_text(COMPANY.format(key="north", xu=north_xu), encoding="utf-8")
    cat = load_catalog(tmp_path / "rules", config, extensions=installed())
    assert cat.diagnostics.errors == []
    return [d.format() for d in cat.diagnostics.warnings]


def test_two_people_under_one_username_are_warned_at_the_second(tmp_path: Path) -> None:
    (found,) = catalog(tmp_path, "徐磊", "徐静")
    assert found.startswith(f"{tmp_path / 'config' / 'north.yaml'}:8:3: K143 warning: ")
    assert "person 'xu' (徐静) has the username of east's 'xu' (徐磊)" in found
    assert "give one of them another username" in found


def test_one_person_of_two_companies_is_not_warned(tmp_path: Path) -> None:
    assert catalog(tmp_path, "徐磊", "徐磊") == []


def test_the_bundled_companies_give_each_username_to_one_person() -> None:
    cat = load_catalog(extensions=installed())
    assert [d.format() for d in cat.diagnostics if d.code == "K143"] == []
