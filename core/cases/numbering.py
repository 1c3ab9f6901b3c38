"""Case numbers: a company picks a scheme per procedure; plugins add schemes.

``procedures: {repair-desk: {numbering: "BX-{yyyy}{mm}-{seq:04}", number_scheme: pattern}}``.
The scheme's ``next_number`` runs inside the transaction that opens the case, so a
rolled-back opening gives its number back: numbers have no gaps and no duplicates, also
with several processes opening cases at once (the counter row is locked until commit).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection

from core.spec.definitions import CompanyDef


@dataclass(frozen=True)
class NumberRequest:
    """What a scheme is told: the company, the procedure, its format and the opening instant."""

    conn: Connection
    company_id: int
    company: CompanyDef
    procedure: str
    format: str
    now: dt.datetime


class NumberScheme(Protocol):
    """``name`` (what ``number_scheme:`` names); ``next_number(request)`` returns the new number."""

    name: str

    def next_number(self, request: NumberRequest) -> str: ...


class NoScheme(Exception):
    """The company names a case-number scheme no installed plugin provides."""


def next_number(request: NumberRequest, scheme: str, schemes: Mapping[str, Any]) -> str:
    """The next number from ``scheme`` (one of ``schemes``, the plugins' schemes by name)."""
    impl = schemes.get(scheme)
    if impl is None:
        raise NoScheme(
            f"case-number scheme '{scheme}' is not installed (installed: "
            f"{', '.join(sorted(schemes)) or 'none'})"
        )
    return str(impl.next_number(request))
