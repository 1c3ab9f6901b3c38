"""The clause maps in docs/procedures/ stay true to the packs they cite.

A map names what implements a clause as `` `pack/kind:name` `` (for instance
`` `qp-complaint/step:review` ``): every such name must be an element of the loaded pack, so
renaming a step, an action, a rule … without updating the maps fails here. Each clause row
ends in a status (``implemented``, ``partly``, ``left out``, ``heading only``, ``copy``,
with `` ×N`` when the row covers N clauses), and docs/procedures/README.md's index gives
each map's counts: they must be the counts of the rows.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from core.runtime.plugins import installed
from core.spec.catalog import load_catalog
from core.spec.definitions import PackDef

ROOT = Path(__file__).resolve().parents[2]
MAPS = ROOT / "docs" / "procedures"
INDEX = MAPS / "README.md"

#: `pack/kind:name`; a list item's field is `pack/field:list.item`
REF = re.compile(r"`([a-z0-9][a-z0-9-]*)/([a-z]+):([A-Za-z0-9_.-]+)`")
STATUS = re.compile(r"^(implemented|partly|left out|heading only|copy)(?: ×(\d+))?$")
STATUSES = ("implemented", "partly", "left out", "heading only", "copy")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _elements(pack: PackDef, kind: str) -> set[str] | None:
    """The names a pack has for one kind of element; None for a kind no pack has."""
    if kind == "field":
        names = set(pack.fields)
        for name, field in pack.fields.items():
            names |= {f"{name}.{item}" for item in field.of or {}}
        return names
    if kind == "action":
        return set(pack.actions).union(*(step.actions for step in pack.steps.values()))
    if kind == "sla":
        return set(pack.slas) | {name for name, step in pack.steps.items() if step.sla}
    if kind == "rule":
        return {rule.id for rule in pack.rules}
    plain: dict[str, Mapping[str, object]] = {
        "step": pack.steps,
        "role": pack.roles,
        "signature": pack.signatures,
        "record": pack.records,
        "report": pack.reports,
        "timer": pack.timers,
        "schedule": pack.schedules,
        "parameter": pack.parameters,
        "template": pack.templates,
        "derive": pack.derive,
    }
    return set(plain[kind]) if kind in plain else None


def unknown_references(text: str, packs: dict[str, PackDef]) -> list[str]:
    """Each `pack/kind:name` of ``text`` that names no element, with what is wrong."""
    bad: list[str] = []
    for key, kind, name in REF.findall(text):
        pack = packs.get(key)
        names = _elements(pack, kind) if pack is not None else None
        if pack is None:
            bad.append(f"{key}/{kind}:{name}: no pack {key!r}")
        elif names is None:
            bad.append(f"{key}/{kind}:{name}: no kind {kind!r}")
        elif name not in names:
            bad.append(f"{key}/{kind}:{name}: {key} has no {kind} {name!r}")
    return bad


@cache
def _packs() -> dict[str, PackDef]:
    catalog = load_catalog(extensions=installed())
    assert not catalog.diagnostics, [d.format() for d in catalog.diagnostics]
    return {key: loaded.pack for key, loaded in catalog.packs.items()}


def _maps() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(MAPS.glob("*.md")) if p != INDEX}


def status_counts(text: str) -> Counter[str]:
    """Clauses per status in the tables of a map whose last column is ``status``."""
    counts: Counter[str] = Counter()
    in_table = False
    for line in text.splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        cells = _cells(line)
        if cells[-1] == "status":
            in_table = True
        elif in_table and not set(cells[0]) <= {"-", ":"}:
            m = STATUS.match(cells[-1])
            assert m, f"row {cells[0]!r}: status {cells[-1]!r} is none of {STATUSES}"
            counts[m[1]] += int(m[2] or 1)
    return counts


def test_every_element_a_map_names_exists() -> None:
    packs = _packs()
    bad = {name: unknown_references(text, packs) for name, text in _maps().items()}
    assert not any(bad.values()), {k: v for k, v in bad.items() if v}


def test_every_pack_of_rules_is_in_a_map() -> None:
    cited = {key for text in _maps().values() for key, _, _ in REF.findall(text)}
    bundled = {p.parent.name for p in (ROOT / "rules").glob("*/procedure.yaml")}
    assert bundled <= set(_packs()), "the rules/ folder names each pack by its key"
    missing = sorted(bundled - cited)
    assert not missing, f"no clause map names an element of {missing}"


def test_a_renamed_or_mistyped_element_is_caught() -> None:
    packs = _packs()
    text = (
        "`qp-complaint/step:review`, `qp-complaint/action:approve`, "
        "`complaint-statistics/field:measures.owner`, `qp-complaint/sla:explain`, "
        "`qp-complaint/step:reviews`, `qp-complaint/rule:survey_link`, "
        "`complaint-statistics/field:measures.who`, `qp-complaint/stage:review`, "
        "`qp-complain/step:review`"
    )
    assert unknown_references(text, packs) == [
        "qp-complaint/step:reviews: qp-complaint has no step 'reviews'",
        "qp-complaint/rule:survey_link: qp-complaint has no rule 'survey_link'",
        "complaint-statistics/field:measures.who: complaint-statistics has no field 'measures.who'",
        "qp-complaint/stage:review: no kind 'stage'",
        "qp-complain/step:review: no pack 'qp-complain'",
    ]


def _index_rows() -> list[dict[str, str]]:
    """The rows of the index's tables, each as {column: cell}."""
    rows: list[dict[str, str]] = []
    header: list[str] = []
    for line in INDEX.read_text(encoding="utf-8").splitlines():
        cells = _cells(line) if line.startswith("|") else []
        if not cells:
            header = []
        elif not header:
            header = cells
        elif not set(cells[0]) <= {"-", ":"}:
            rows.append(dict(zip(header, cells, strict=True)))
    return rows


def test_the_index_counts_are_the_maps_counts() -> None:
    listed: dict[str, Counter[str]] = {}
    per_document: dict[str, Counter[str]] = {}
    totals: dict[str, Counter[str]] = {}
    for row in _index_rows():
        if "items" not in row:
            continue
        counts = Counter({s: int(row[s]) for s in STATUSES})
        assert int(row["items"]) == counts.total(), row
        if "clause map" in row:
            link = re.search(r"\]\(([a-z0-9-]+\.md)(?:#[^)]*)?\)", row["clause map"])
            assert link, f"index row {row['procedure']!r}: no link to a map"
            listed.setdefault(link[1], Counter()).update(counts)
            per_document.setdefault(row["document"], Counter()).update(counts)
        else:
            totals[row["document"]] = counts
    counted = {name: status_counts(text) for name, text in _maps().items()}
    assert set(listed) == set(counted), "every map is in the index, and only maps"
    for name, counts in counted.items():
        assert +listed[name] == +counts, f"{name}: index {dict(listed[name])}, map {dict(counts)}"
    assert {d: +c for d, c in totals.items()} == {d: +c for d, c in per_document.items()}
