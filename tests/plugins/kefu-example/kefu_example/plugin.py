"""The example plugin: one of each kind of extension, using only kefu's public seams.

- effect type ``check_warranty`` (``then:`` in rule files): is the product still under
  warranty on the day the case was opened? Writes ``in`` / ``out`` to a choice field.
- field type ``serial``: a product serial ``SN`` + 8 digits whose last digit is a Luhn
  check digit; rules see it as text.
- dispatch strategy ``vip``: a case whose ``vip`` field is true goes to someone with the
  ``vip`` skill, the least loaded of them.
- a lifecycle hook counting closed cases, an API route reporting it, and settings
  (``plugins: {example: {settings: {warranty_months: 24}}}``) validated at load time.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from litestar import get
from litestar.di import NamedDependency
from pydantic import BaseModel, ConfigDict, Field

from api.problems import errors
from core import hookimpl
from core.cases.dispatch import Candidate, Choice, DispatchRequest
from core.cases.service import Actor
from core.spec.definitions import FieldDef, PackDef
from core.spec.effects import Change, EffectType, Problem
from core.spec.fields import FieldValueError


class Settings(BaseModel):
    """What a company may set under ``plugins: {example: {settings: ...}}``."""

    model_config = ConfigDict(extra="forbid")
    warranty_months: int = Field(default=12, ge=1, le=120)


settings_model = Settings  # kefu validates company settings against it (K601)

# -- effect type ---------------------------------------------------------------------------------


class WarrantyArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    purchased: str  # a date field
    to: str  # a choice field with choices in / out
    months: int | None = Field(default=None, ge=1, le=120)  # default: the company setting


def _check(args: WarrantyArgs, pack: PackDef) -> list[Problem]:
    out = []
    f = pack.fields.get(args.purchased)
    if f is None or f.type != "date":
        out.append(
            Problem(("purchased",), "K106", f"'{args.purchased}' is not a date field of this pack")
        )
    t = pack.fields.get(args.to)
    if t is None or t.type != "choice" or not {"in", "out"} <= set(t.choices or {}):
        out.append(
            Problem(("to",), "K106", f"'{args.to}' is not a choice field with choices in and out")
        )
    return out


def _months_later(day: dt.date, months: int) -> dt.date:
    y, m = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m + 1
    last = [
        31,
        29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28,
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ][month - 1]
    return dt.date(year, month, min(day.day, last))


def _apply(change: Change, args: WarrantyArgs, rule_id: str) -> None:
    raw = change.fields.get(args.purchased)
    if raw is None:
        change.note("warranty_unknown", rule_id, reason=f"'{args.purchased}' is empty")
        return
    company = change.context.get("company")
    months = args.months or (
        Settings.model_validate(
            company.plugins.get("example").settings
            if company and "example" in company.plugins
            else {}
        ).warranty_months
    )
    until = _months_later(dt.date.fromisoformat(raw), months)
    today = (change.now or dt.datetime.now(dt.UTC)).date()
    verdict = "in" if today <= until else "out"
    change.fields[args.to] = verdict
    change.note(
        "warranty_checked", rule_id, until=until.isoformat(), months=months, verdict=verdict
    )


CHECK_WARRANTY = EffectType(
    "check_warranty",
    WarrantyArgs,
    _apply,
    _check,
    "set a choice field to in/out: is the product under warranty today?",
)

# -- field type -------------------------------------------------------------------------------

SERIAL = re.compile(r"^SN(\d{8})$")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


class SerialField:
    name = "serial"
    fact_kind = "text"

    def coerce(self, fdef: FieldDef, value: Any) -> Any:
        text = str(value).strip().upper().replace("-", "").replace(" ", "")
        m = SERIAL.match(text)
        if not m:
            raise FieldValueError("a serial is SN followed by 8 digits, e.g. SN12345674")
        if not luhn_ok(m.group(1)):
            raise FieldValueError(f"{text}: the check digit is wrong (mistyped?)")
        return text

    def fact(self, fdef: FieldDef, stored: Any) -> Any:
        return stored

    def json_schema(self, fdef: FieldDef) -> dict[str, Any]:
        return {"type": "string", "pattern": r"^SN-?\d{8}$"}


# -- dispatch strategy ------------------------------------------------------------------------


class VipStrategy:
    name = "vip"

    def choose(self, candidates: Sequence[Candidate], request: DispatchRequest) -> Choice | None:
        if request.fields.get("vip") is not True:
            return None
        pool = sorted(
            (c for c in candidates if "vip" in c.skills), key=lambda c: (c.open_cases, c.username)
        )
        if not pool:
            return None
        return Choice(
            pool[0].username,
            f"VIP customer: {pool[0].username} serves VIPs, {pool[0].open_cases} open",
        )


# -- hooks ------------------------------------------------------------------------------------

CLOSED: dict[str, list[str]] = {}  # company -> case numbers closed, as heard after commit


@get(
    "/api/v1/example/closed",
    operation_id="exampleClosed",
    tags=["example"],
    sync_to_thread=False,
    responses=errors(),
)  # documents the 401 problem answer the API's authentication gives
def closed_cases(actor: NamedDependency[Actor]) -> dict[str, Any]:
    """Case numbers of my company the example plugin heard closing (kefu_case_closed)."""
    return {"closed": list(CLOSED.get(actor.company, []))}


@hookimpl
def kefu_effect_types() -> list[EffectType]:
    return [CHECK_WARRANTY]


@hookimpl
def kefu_field_types() -> list[SerialField]:
    return [SerialField()]


@hookimpl
def kefu_dispatch_strategies() -> list[VipStrategy]:
    return [VipStrategy()]


@hookimpl
def kefu_case_closed(event: Any) -> None:
    CLOSED.setdefault(event.company, []).append(event.number)


@hookimpl
def kefu_api_routes() -> list[Any]:
    return [closed_cases]


@hookimpl
def kefu_pack_dirs() -> list[Path]:
    return [Path(__file__).parent / "rules" / "warranty-desk"]
