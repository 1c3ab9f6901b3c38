"""Who holds a role: the one place that decides it.

A role of a procedure (``quality_manager``) is held by a person when the company config
says so, in this order of precedence:

1. the person has the role directly (``people: {li: {roles: [engineer]}}`` or the
   membership's roles in the database);
2. the procedure's own mapping (``procedures: {qp-complaint: {roles: {r: …}}}``) or, when
   the procedure maps nothing for the role, the company-wide ``roles: {r: …}`` names the
   person or one of their departments.

The case service (may this actor act?), the dispatch effect (who are the candidates?),
the API (``/me``) and the loader (is every role held by somebody?) all ask here.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from core.spec.definitions import CompanyDef, Holders


@dataclass(frozen=True)
class Holding:
    """Why a person holds a role: ``via`` is ``role``, ``person`` or ``department``."""

    role: str
    via: str
    department: str | None = None

    def describe(self) -> str:
        """In words, for ``/me`` and explanations."""
        if self.via == "department":
            return f"department {self.department}"
        return "named in the config" if self.via == "person" else "given directly"


def holders(company: CompanyDef, procedure: str, role: str) -> Holders | None:
    """The departments and people mapped to ``role`` for ``procedure`` (None: unmapped)."""
    settings = company.procedures.get(procedure)
    return (settings.roles.get(role) if settings else None) or company.roles.get(role)


def holding(
    company: CompanyDef,
    procedure: str,
    role: str,
    username: str,
    departments: Collection[str],
    roles: Collection[str],
) -> Holding | None:
    """Whether (and why) the person with these departments and direct roles holds ``role``."""
    if role in roles:
        return Holding(role, "role")
    mapped = holders(company, procedure, role)
    if mapped is None:
        return None
    if username in mapped.people:
        return Holding(role, "person")
    dept = next((d for d in mapped.departments if d in departments), None)
    return Holding(role, "department", dept) if dept is not None else None


def role_holders(company: CompanyDef, procedure: str, role: str) -> list[str]:
    """User names of the company's configured people who hold ``role``, sorted."""
    return sorted(
        username
        for username, person in company.people.items()
        if holding(company, procedure, role, username, person.departments, person.roles)
    )


def held_by_nobody(company: CompanyDef, procedure: str, role: str) -> bool:
    """True when no person and no department is mapped to ``role`` (a config mistake)."""
    mapped = holders(company, procedure, role)
    if mapped is not None and (mapped.departments or mapped.people):
        return False
    return not any(role in p.roles for p in company.people.values())
