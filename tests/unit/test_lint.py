"""The lints of `kefu validate` (warnings): a condition that can never hold (K138), a
calendar with no working day (K119), actions nobody in a company can take (K139)."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

from core.rules.expr import FieldType, parse_condition
from core.rules.satisfiable import can_hold
from core.runtime.plugins import installed
from core.spec.catalog import ROOT
from core.spec.loading import effect_registry, load_company, load_pack

TYPES = {
    "urgency": FieldType("choice", ("high", "low")),
    "qty": FieldType("integer"),
    "name": FieldType("text"),
    "stopped": FieldType("boolean"),
}
DOMAINS = {"urgency": ["high", "low"], "stopped": [True, False]}


def holds_somehow(text: str) -> bool:
    return can_hold(parse_condition(text, TYPES, {}), DOMAINS)


def test_conditions_that_can_never_hold() -> None:
    for text in [
        'urgency == "high" and urgency == "low"',
        "qty > 5 and qty < 3",
        'urgency != "high" and urgency != "low"',  # given the field's choices
        'name == "a" and name != "a"',
        "stopped and not stopped",
        'urgency in ["high"] and not urgency == "high"',
    ]:
        assert not holds_somehow(text), text


def test_conditions_that_can_hold() -> None:
    for text in [
        "qty > 5 and qty < 7",
        "qty > 5 and qty < 6",  # 5.5
        "not (qty > 5 or qty <= 5)",  # qty without a value
        'urgency != "high"',
        'name != "a" and name != "b"',
        "urgency is None and not stopped",
    ]:
        assert holds_somehow(text), text


def _company(tmp_path: Path, body: str) -> str:
    path = tmp_path / "acme.yaml"
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    ext = installed()
    packs = {}
    for key in ("four-eyes",):
        lp, _ = load_pack(ROOT / "tests" / "packs" / key, extensions=ext)
        assert lp is not None
        packs[key] = lp
    _, diags = load_company(path, packs, effect_registry(ext), extensions=ext)
    return "\n".join(d.format() for d in diags)


def test_actions_nobody_can_take_and_a_calendar_without_working_days(tmp_path: Path) -> None:
    today = dt.date.today()  # noqa: DTZ011  # the lint looks at the coming year from today
    sundays = [today + dt.timedelta(days=n) for n in range(400)]
    holidays = ", ".join(f"{d.isoformat()}: off" for d in sundays if d.isoweekday() == 7)
    out = _company(
        tmp_path,
        f"""
        kefu: 1
        company: acme
        name: Acme
        calendar:
          country: null
          weekend: [mon, tue, wed, thu, fri, sat]
          extra_holidays: {{{holidays}}}
        people:
          li: {{name: Li, roles: [sales]}}
        procedures:
          four-eyes: {{}}
        """,
    )
    assert "K119 warning: calendar: the working calendar has no working day" in out
    assert "K139 warning: procedures.four-eyes: nobody in this company can take 2 action(s)" in out
    assert "fill.fill, review.sign" in out  # explained (sales) is taken by li
