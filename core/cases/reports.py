"""Reports: read-only summaries plugins register through ``kefu_reports``.

A report has a ``name``, a ``title`` and ``run(request) -> ReportResult``; it runs in a
read-only transaction (``request.conn``) for one company. ``kefu report NAME`` prints it;
``GET /api/v1/reports/{name}`` returns it as JSON, ``…/export`` as XLSX or CSV and
``…/chart`` draws its chart (a result's ``chart``) as SVG.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection

from core.cases.charts import Chart
from core.errors import InvalidInput, NotFound
from core.spec.definitions import CompanyDef
from core.spec.extensions import enabled_for


@dataclass(frozen=True)
class ReportRequest:
    """What a report runs on: a read transaction, one company, the request's parameters."""

    conn: Connection
    company_id: int
    company: CompanyDef
    params: dict[str, str] = field(default_factory=dict)
    #: the case service (``core.cases.service.CaseService``): deadlines, calendars, pinned
    #: procedures; its own reads run in their own transactions
    service: Any = None

    def day_start(self, name: str) -> dt.datetime | None:
        """The start (in the company's time zone, as UTC) of the ISO date in parameter
        ``name``; None when it is not given. Anything else is a 422 naming the parameter."""
        raw = self.params.get(name)
        if not raw:
            return None
        try:
            day = dt.date.fromisoformat(raw.strip())
            tz = zoneinfo.ZoneInfo(self.company.timezone)
            return dt.datetime.combine(day, dt.time(), tz).astimezone(dt.UTC)
        except (ValueError, OverflowError):
            raise InvalidInput(
                f"{name}: '{raw}' is not a date (YYYY-MM-DD, years 1-9999)",
                errors={name: "expected a date, YYYY-MM-DD"},
            ) from None


@dataclass
class ReportResult:
    """A report's answer: a table (columns, rows) and notes in words."""

    columns: list[str]
    rows: list[list[Any]]
    notes: list[str] = field(default_factory=list)
    chart: Chart | None = None  # drawn as SVG by core.cases.charts


class Report(Protocol):
    """A report from a plugin (``kefu_reports``): ``name``, ``title`` and ``run``."""

    name: str
    title: str

    def run(self, request: ReportRequest) -> ReportResult: ...


def run_report(
    svc: Any, company: str, name: str, params: dict[str, str] | None = None
) -> ReportResult:
    """Run report ``name`` for ``company`` (NotFound when either is unknown)."""
    reports = svc.catalog.extensions.reports
    report = reports.get(name)
    rt = svc.company(company)
    owner = svc.catalog.extensions.plugin_of("report", name)
    if report is None or (owner and not enabled_for(rt.definition, owner)):
        raise NotFound(f"unknown report '{name}' (reports: {', '.join(sorted(reports)) or 'none'})")
    with svc.db.read() as conn:
        return report.run(ReportRequest(conn, rt.id, rt.definition, dict(params or {}), svc))
