"""Reports: read-only summaries plugins register through ``kefu_reports``, and the
``reports:`` a pack declares (:class:`PackReport`, named ``<procedure>.<report>``).

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

from sqlalchemy import Connection, select

from core.cases.charts import Chart
from core.errors import InvalidInput, NotFound
from core.rules.ir import fields_of
from core.rules.reference import holds
from core.spec.definitions import CompanyDef
from core.spec.extensions import enabled_for
from core.storage import schema as t


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


def available(svc: Any, company: str) -> dict[str, Report]:
    """The reports ``company`` may run, by name: those of the plugins it has not switched
    off, and the ``reports:`` of the packs it enables, named ``<procedure>.<report>``."""
    rt = svc.company(company)
    reg = svc.catalog.extensions
    out: dict[str, Report] = {
        name: r
        for name, r in reg.reports.items()
        if enabled_for(rt.definition, reg.plugin_of("report", name) or "")
    }
    locale = rt.definition.locale
    for key, proc in rt.procedures.items():
        for rname, rdef in proc.pack.reports.items():
            title = rdef.title.text(locale)
            if rdef.form_number:
                title += f" ({rdef.form_number})"
            out[f"{key}.{rname}"] = PackReport(f"{key}.{rname}", title, key, rname)
    return dict(sorted(out.items()))


def find_report(svc: Any, company: str, name: str) -> Report:
    """Report ``name`` as ``company`` may run it (NotFound when it is unknown there)."""
    reports = available(svc, company)
    report = reports.get(name)
    if report is None:
        raise NotFound(f"unknown report '{name}' (reports: {', '.join(reports) or 'none'})")
    return report


def run_report(
    svc: Any, company: str, name: str, params: dict[str, str] | None = None
) -> ReportResult:
    """Run report ``name`` for ``company`` (NotFound when either is unknown)."""
    report = find_report(svc, company, name)
    rt = svc.company(company)
    with svc.db.read() as conn:
        return report.run(ReportRequest(conn, rt.id, rt.definition, dict(params or {}), svc))


# -- reports declared by packs ----------------------------------------------------------------

#: the most periods one run of a pack report covers (ten years of months, twice over)
MAX_PERIODS = 240
_MONTHS = {"month": 1, "quarter": 3, "year": 12}
_TOTAL = {"zh-CN": "合计", "en": "Total"}
_PERIOD = {"zh-CN": "期间", "en": "Period"}
_YES_NO = {"zh-CN": ("是", "否"), "en": ("yes", "no")}


def period_start(day: dt.date, per: str) -> dt.date:
    """The first day of the month, quarter or year ``day`` falls in."""
    months = _MONTHS[per]
    return dt.date(day.year, (day.month - 1) // months * months + 1, 1)


def next_period(start: dt.date, per: str) -> dt.date:
    """The first day of the period after the one starting on ``start``."""
    month = start.month - 1 + _MONTHS[per]
    return dt.date(start.year + month // 12, month % 12 + 1, 1)


def period_label(start: dt.date, per: str) -> str:
    """``2026-11``, ``2026-Q4`` or ``2026``."""
    if per == "year":
        return f"{start.year}"
    if per == "quarter":
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    return f"{start.year}-{start.month:02d}"


def _month_param(request: ReportRequest, name: str) -> dt.date | None:
    raw = request.params.get(name)
    if not raw:
        return None
    try:
        text = raw.strip()
        return dt.date.fromisoformat(f"{text}-01" if len(text) == 7 else text)
    except ValueError:
        raise InvalidInput(
            f"{name}: '{raw}' is not a month such as 2026-11", errors={name: "YYYY-MM"}
        ) from None


@dataclass
class PackReport:
    """A report a pack declares under ``reports:`` (``core.spec.definitions.ReportDef``).

    Per period (in the company's time zone) it counts the procedure's cases: ``opened``
    in the period, ``closed`` in it, ``open`` at its end, or the times an action was taken
    in it (``{action: name}``); a column's ``when`` keeps the cases whose fields, as they
    are now, satisfy it. With ``by``, one row per value of that field and a total row.
    Params: ``since`` / ``until`` (months, ``2026-11``; default from the first case to the
    current period), ``lang``.
    """

    name: str
    title: str
    procedure: str
    report: str

    def run(self, request: ReportRequest) -> ReportResult:
        svc = request.service
        rt = svc.company(request.company.company)
        proc = rt.procedures.get(self.procedure)
        if proc is None or self.report not in proc.pack.reports:
            raise NotFound(f"unknown report '{self.name}'")
        rdef = proc.pack.reports[self.report]
        conds = proc.reports.get(self.report, {})
        per = rdef.per
        locale = (
            "en"
            if (request.params.get("lang") or request.company.locale).startswith("en")
            else "zh-CN"
        )
        tz = zoneinfo.ZoneInfo(request.company.timezone)
        since, until = _month_param(request, "since"), _month_param(request, "until")
        last = period_start(until or svc.clock.now().astimezone(tz).date(), per)
        end = next_period(last, per)
        c = t.case
        cases = request.conn.execute(
            select(c.c.id, c.c.created_at, c.c.closed_at, c.c.step, c.c.fields).where(
                c.c.company_id == request.company_id,
                c.c.procedure == self.procedure,
                c.c.created_at < dt.datetime.combine(end, dt.time(), tz).astimezone(dt.UTC),
            )
        ).all()

        def period_of(moment: dt.datetime) -> dt.date:
            return period_start(moment.astimezone(tz).date(), per)

        first = (
            period_start(since, per)
            if since
            else min((period_of(r.created_at) for r in cases), default=last)
        )
        periods: list[dt.date] = []
        p = first
        while p <= last:
            periods.append(p)
            if len(periods) > MAX_PERIODS:
                raise InvalidInput(
                    f"since/until: at most {MAX_PERIODS} periods in one run",
                    errors={"since": "too early"},
                )
            p = next_period(p, per)
        if not periods:
            raise InvalidInput("since: after until", errors={"since": "after until"})
        index = {p: i for i, p in enumerate(periods)}
        by = rdef.by
        fdef = proc.pack.fields.get(by) if by else None
        counts: dict[tuple[int, Any], dict[str, int]] = {}
        calendar = svc.calendar(request.company.company)
        picked: dict[int, tuple[Any, set[str]]] = {}
        # the facts the conditions read: derived values only when one of them needs some
        # (computing every derived value of the pack was most of the time per case)
        reads = {n for cond in conds.values() for n in fields_of(cond)}
        derive = bool(reads & set(proc.derived.exprs))
        for row in cases:
            fields = row.fields or {}
            cols = set(rdef.columns)
            if conds:
                given = fields if derive else {k: v for k, v in fields.items() if k in reads}
                facts = proc.facts(
                    given, event="action", step=row.step, calendar=calendar, derive=derive
                )
                cols = {n for n in cols if n not in conds or holds(conds[n], facts)}
            value = fields.get(by) if by else None
            picked[row.id] = (value, cols)
            opened = period_of(row.created_at)
            closed = period_of(row.closed_at) if row.closed_at is not None else None
            for cname, col in rdef.columns.items():
                if cname not in cols or not isinstance(col.count, str):
                    continue
                if col.count == "open":
                    within = [q for q in periods if q >= opened and (closed is None or q < closed)]
                else:
                    within = [opened] if col.count == "opened" else [closed] if closed else []
                for q in within:
                    if q in index:
                        cell = counts.setdefault((index[q], value), {})
                        cell[cname] = cell.get(cname, 0) + 1
        by_action = {
            col.count.action: cname
            for cname, col in rdef.columns.items()
            if not isinstance(col.count, str)
        }
        if by_action and picked:
            j = t.journal
            start = dt.datetime.combine(periods[0], dt.time(), tz).astimezone(dt.UTC)
            ids = list(picked)
            for at in range(0, len(ids), 500):  # by case, through ix_journal_case
                for case_id, action, moment in request.conn.execute(
                    select(j.c.case_id, j.c.action, j.c.at).where(
                        j.c.company_id == request.company_id,
                        j.c.case_id.in_(ids[at : at + 500]),
                        j.c.kind == "action",
                        j.c.action.in_(sorted(by_action)),
                        j.c.at >= start,
                    )
                ):
                    value, cols = picked[case_id]
                    cname = by_action[action]
                    q = period_of(moment)
                    if cname in cols and q in index:
                        cell = counts.setdefault((index[q], value), {})
                        cell[cname] = cell.get(cname, 0) + 1
        names = list(rdef.columns)
        columns = [_PERIOD[locale]]
        values: list[Any] = [None]
        if fdef is not None:
            columns.append(fdef.label.text(locale))
            if fdef.type == "boolean":
                values = [True, False, None]
            else:
                values = [*(fdef.choices or {}), None]
        columns += [rdef.columns[n].label.text(locale) for n in names]
        seen = {v for _, v in counts if v is not None and v not in values}
        values[-1:-1] = sorted(seen, key=str)  # values older versions of the pack had
        rows: list[list[Any]] = []
        totals: dict[str, list[float]] = {n: [] for n in names}
        for i, p in enumerate(periods):
            label = period_label(p, per)
            sums = dict.fromkeys(names, 0)
            for value in values:
                cell = counts.get((i, value), {})
                for n in names:
                    sums[n] += cell.get(n, 0)
                if fdef is None:
                    continue
                if value is None and not cell:
                    continue  # cases without a value: a row only when there are some
                rows.append(
                    [label, _value_label(fdef, value, locale), *(cell.get(n, 0) for n in names)]
                )
            if fdef is not None:
                rows.append([label, _TOTAL[locale], *(sums[n] for n in names)])
            else:
                rows.append([label, *(sums[n] for n in names)])
            for n in names:
                totals[n].append(float(sums[n]))
        chart = Chart(
            title=rdef.title.text(locale),
            labels=[period_label(p, per) for p in periods],
            series={rdef.columns[n].label.text(locale): totals[n] for n in names},
            stacked=False,
        )
        notes = []
        if rdef.form_number:
            notes.append(f"{rdef.form_number}{f' — {rdef.source}' if rdef.source else ''}")
        if conds:
            notes.append(
                "按案件当前字段筛选"
                if locale == "zh-CN"
                else "conditions read the cases as they are now"
            )
        if not cases:
            notes.append("本期无案件" if locale == "zh-CN" else "no cases in this period")
        return ReportResult(columns, rows, notes, chart)


def _value_label(fdef: Any, value: Any, locale: str) -> str:
    """A row's value of the ``by`` field, in words."""
    if value is None:
        return "—"
    if fdef.type == "boolean":
        yes, no = _YES_NO[locale]
        return yes if value else no
    label = (fdef.choices or {}).get(value)
    return label.text(locale) if label is not None else str(value)
