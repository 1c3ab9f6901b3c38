"""docs/rule-files.md documents every diagnostic code the code can emit, and no other;
and every key, field type and effect the schema knows.

A code is "emitted" when it appears as a string literal ("K104") in a module of core/ or plugins/;
docstrings that mention codes in passing (a reserved range, say) do not count.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from core.spec import definitions as d
from core.spec.effects import BUILTIN_EFFECTS
from core.time.calendars import CalendarDef

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "rule-files.md"
EMITTED = re.compile(r"""["'](K\d{3})["']""")
ROW = re.compile(r"^\|\s*(?:<a id=\"(k\d{3})\"></a>)?(K\d{3})\s*\|\s*(.+?)\s*\|\s*(.+?)\s*\|\s*$")


def emitted_codes() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted([*(ROOT / "core").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]):
        for code in EMITTED.findall(path.read_text(encoding="utf-8")):
            found.setdefault(code, []).append(str(path.relative_to(ROOT)))
    return found


def documented_rows() -> dict[str, tuple[str | None, str, str]]:
    rows: dict[str, tuple[str | None, str, str]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = ROW.match(line)
        if m:
            assert m[2] not in rows, f"{m[2]} has two rows in the table"
            rows[m[2]] = (m[1], m[3], m[4])
    return rows


def test_the_code_emits_codes_at_all() -> None:
    codes = emitted_codes()
    assert {"K100", "K102", "K202", "K301"} <= set(codes)


def test_every_emitted_code_is_documented() -> None:
    missing = {
        code: where for code, where in emitted_codes().items() if code not in documented_rows()
    }
    assert not missing, f"codes used in core/ but missing from the table in {DOC.name}: {missing}"


def test_every_documented_code_exists() -> None:
    emitted = emitted_codes()
    mentioned = set(re.findall(r"\bK\d{3}\b", DOC.read_text(encoding="utf-8")))
    stale = sorted(mentioned - set(emitted))
    assert not stale, f"{DOC.name} mentions codes nothing emits: {stale}"


def test_every_row_has_an_anchor_a_meaning_and_a_fix() -> None:
    for code, (anchor, meaning, fix) in documented_rows().items():
        assert anchor == code.lower(), f'{code}: the row needs <a id="{code.lower()}"></a>'
        assert len(meaning) > 10 and len(fix) > 10, code


def test_links_to_codes_point_at_rows() -> None:
    text = DOC.read_text(encoding="utf-8")
    rows = documented_rows()
    for target in re.findall(r"\]\(#(k\d{3})\)", text):
        assert target.upper() in rows, target


def _keys(model: type[BaseModel]) -> set[str]:
    return {info.alias or name for name, info in model.model_fields.items()}


def test_every_key_of_packs_configs_and_effects_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    models: list[type[BaseModel]] = [
        d.PackDef,
        d.ParameterDef,
        d.RoleDef,
        d.FieldDef,
        d.OpenDef,
        d.StepDef,
        d.ActionDef,
        d.RuleDef,
        d.DeriveDef,
        d.Branch,
        d.RecordDef,
        d.ReportDef,
        d.ReportColumnDef,
        d.ActionCount,
        d.SignatureDef,
        d.RetainDef,
        d.WaitDef,
        d.AttachmentSettings,
        d.RecordSettings,
        d.Label,
        d.CompanyDef,
        d.DepartmentDef,
        d.Holders,
        d.PersonDef,
        d.ProcedureSettings,
        d.SlaDef,
        d.StepSlaDef,
        d.TimerDef,
        d.EventRef,
        d.TargetRow,
        d.PromisedTarget,
        d.PauseDef,
        d.ExtensionDef,
        CalendarDef,
        d.ScheduleDef,
        d.SchedulePhase,
        d.ScheduleOverride,
    ]
    models += [e.args for e in BUILTIN_EFFECTS if "root" not in e.args.model_fields]
    missing = {f"{m.__name__}.{k}" for m in models for k in _keys(m) if f"`{k}`" not in text}
    assert not missing, f"keys not documented in {DOC.name}: {sorted(missing)}"


def test_every_field_type_and_effect_has_its_entry() -> None:
    text = DOC.read_text(encoding="utf-8")
    for kind in d.FIELD_KINDS:
        assert f"| `{kind}` |" in text or f"`{kind}`," in text or f", `{kind}` |" in text, kind
    for effect in BUILTIN_EFFECTS:
        assert f"### `{effect.name}`" in text, effect.name
    for fact in d.SYSTEM_FACTS:
        assert f"| `{fact}` |" in text, fact
