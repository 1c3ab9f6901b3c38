"""The spec side: what a procedure pack and a company config may say.

These pydantic models are the schema of ``rules/<pack>/procedure.yaml`` and
``config/<company>.yaml``. They only check shape; cross-references (a step naming an
unknown role, a rule naming an unknown field) are checked by :mod:`core.loader`, which
also maps every problem back to file:line:col. The instance side (cases, journal,
timers) lives in :mod:`core.storage`; the two never mix.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

KEY_RE = r"^[a-z][a-z0-9_]*$"
PACK_RE = r"^[a-z][a-z0-9-]*$"
Key = Annotated[str, Field(pattern=KEY_RE)]
PackKey = Annotated[str, Field(pattern=PACK_RE)]

FIELD_KINDS = (
    "text",
    "longtext",
    "number",
    "integer",
    "money",
    "boolean",
    "date",
    "datetime",
    "choice",
    "phone",
    "email",
    "person",
    "attachment",
)

#: facts every rule may use besides the declared fields
SYSTEM_FACTS = ("event", "action", "step", "from_step")
#: values of the ``event`` fact: rules see "opened" and "action", guards see "guard"
EVENTS = ("opened", "action", "guard")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Label(Strict):
    """A text in each language; zh-CN is the source language of every seed."""

    zh_CN: str = Field(alias="zh-CN")
    en: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def text(self, locale: str = "zh-CN") -> str:
        return self.en if locale.startswith("en") and self.en else self.zh_CN


def _label(value: Any) -> Any:
    # A bare string is the zh-CN label: most seeds are Chinese only.
    return {"zh-CN": value} if isinstance(value, str) else value


LabelIn = Annotated[Label, Field()]


class FieldDef(Strict):
    type: Literal[
        "text", "longtext", "number", "integer", "money", "boolean", "date", "datetime",
        "choice", "phone", "email", "person", "attachment",
    ]
    label: Label
    help: Label | None = None
    choices: dict[str, Label] | None = None
    min: float | None = None
    max: float | None = None
    max_length: int | None = Field(default=None, gt=0)
    multiple: bool = False

    @field_validator("label", "help", mode="before")
    @classmethod
    def _lbl(cls, v: Any) -> Any:
        return _label(v)

    @field_validator("choices", mode="before")
    @classmethod
    def _choices(cls, v: Any) -> Any:
        if isinstance(v, list):
            return {str(c): {"zh-CN": str(c)} for c in v}
        if isinstance(v, dict):
            return {k: _label(lbl) for k, lbl in v.items()}
        return v


class ActionDef(Strict):
    label: Label
    to: Key | None = None
    role: list[Key] | None = None
    ask: list[Key] = []
    require: list[Key] = []
    guard: str | None = None
    source: str | None = None

    @field_validator("label", mode="before")
    @classmethod
    def _lbl(cls, v: Any) -> Any:
        return _label(v)

    @field_validator("role", mode="before")
    @classmethod
    def _roles(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class StepDef(Strict):
    label: Label
    role: list[Key] = []
    final: bool = False
    actions: dict[Key, ActionDef] = {}
    source: str | None = None

    @field_validator("label", mode="before")
    @classmethod
    def _lbl(cls, v: Any) -> Any:
        return _label(v)

    @field_validator("role", mode="before")
    @classmethod
    def _roles(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class OpenDef(Strict):
    """Who may open a case and what the opening form asks."""

    role: list[Key]
    ask: list[Key] = []
    require: list[Key] = []

    @field_validator("role", mode="before")
    @classmethod
    def _roles(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class RoleDef(Strict):
    label: Label

    @field_validator("label", mode="before")
    @classmethod
    def _lbl(cls, v: Any) -> Any:
        return _label(v)


class RuleDef(Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
    when: str | None = None
    then: list[dict[str, Any]] = Field(min_length=1)
    source: str | None = None
    description: str | None = None


class RecordDef(Strict):
    title: Label
    form_number: str | None = None
    fields: list[Key]
    source: str | None = None

    @field_validator("title", mode="before")
    @classmethod
    def _lbl(cls, v: Any) -> Any:
        return _label(v)


class ParameterDef(Strict):
    type: Literal["number", "integer", "text", "boolean"]
    default: Any
    label: Label | None = None

    @field_validator("label", mode="before")
    @classmethod
    def _lbl(cls, v: Any) -> Any:
        return _label(v)


class PackDef(Strict):
    """``rules/<pack>/procedure.yaml``."""

    kefu: Literal[1]
    procedure: PackKey
    title: Label
    source: str | None = None
    parameters: dict[Key, ParameterDef] = {}
    roles: dict[Key, RoleDef] = Field(min_length=1)
    fields: dict[Key, FieldDef] = {}
    open: OpenDef
    start: Key
    steps: dict[Key, StepDef] = Field(min_length=1)
    rules: list[RuleDef] = []
    records: dict[Key, RecordDef] = {}

    @field_validator("title", mode="before")
    @classmethod
    def _lbl(cls, v: Any) -> Any:
        return _label(v)


# -- company config ---------------------------------------------------------------------


class Holders(Strict):
    """Who holds a role: whole departments and/or named people."""

    departments: list[Key] = []
    people: list[Key] = []


class DepartmentDef(Strict):
    label: Label

    @field_validator("label", mode="before")
    @classmethod
    def _lbl(cls, v: Any) -> Any:
        return _label(v)


class PersonDef(Strict):
    name: str
    departments: list[Key] = []
    roles: list[Key] = []
    email: str | None = None
    phone: str | None = None


NUMBERING_RE = re.compile(r"\{(yyyy|yy|mm|dd|seq(?::0?\d+)?)\}")


class ProcedureSettings(Strict):
    enabled: bool = True
    parameters: dict[Key, Any] = {}
    numbering: str = "{procedure}-{yyyy}{mm}{dd}-{seq:04}"
    roles: dict[Key, Holders] = {}


class CompanyDef(Strict):
    """``config/<company>.yaml``."""

    kefu: Literal[1]
    company: PackKey
    name: Label
    timezone: str = "Asia/Shanghai"
    locale: Literal["zh-CN", "en"] = "zh-CN"
    rules_engine: Literal["durable", "durable-inprocess", "reference"] | None = None
    departments: dict[Key, DepartmentDef] = {}
    roles: dict[Key, Holders] = {}
    people: dict[Key, PersonDef] = {}
    procedures: dict[PackKey, ProcedureSettings] = {}
    # settings handed to each notification channel for this company's messages
    # (e.g. ``email: {host: smtp.example.com, port: 587}``); the channel validates them
    channels: dict[Key, dict[str, Any]] = {}

    @field_validator("name", mode="before")
    @classmethod
    def _lbl(cls, v: Any) -> Any:
        return _label(v)
