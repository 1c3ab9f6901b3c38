"""Built-in plugin ``kpi``: statistics computed from cases, with charts.

``complaints-monthly`` — QP/XX-A-2021 §5.1.3.2: "销售部对每月顾客投诉进行统计分析,从投诉问题
的发生的时间范围/频次和紧急程度(高,中,低)两个维度进行分析,对于频次较高或者紧急程度较高
的投诉,定期召开…顾客投诉沟通会". Per month (in the company's zone) and complaint category:
how many complaints, how many of each urgency, and whether the month's category calls the
complaint meeting — as often as the complaint-statistics pack's ``meeting_threshold``
(the company's value) or any of high urgency. A stacked bar chart per month by category.

``count_cases`` — the same count as an effect, so a procedure works with computed figures
instead of totals typed in: the monthly statistics case of complaint-statistics counts the
month's qp-complaint cases when it opens (total, and one item per complaint category with
its high / medium / low counts); the 深圳 yearly satisfaction analysis counts the year's
complaints the same way.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select

from core import hookimpl
from core.cases.charts import Chart
from core.cases.reports import ReportRequest, ReportResult
from core.errors import InvalidInput, NotFound
from core.spec.definitions import KEY_RE, PACK_RE, FieldDef, PackDef
from core.spec.effects import Change, EffectType, Problem, _fields_hint
from core.spec.fields import coerce
from core.storage import schema as t

DEFAULT_THRESHOLD = 3
WORDS = {
    "zh-CN": ("月份", "投诉内容", "高", "中", "低", "合计", "召开沟通会", "是", "否", "投诉数"),
    "en": ("Month", "Category", "High", "Medium", "Low", "Total", "Meeting", "yes", "no", "Count"),
}


def _month(text: str | None, name: str) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(f"{text}-01" if len(text) == 7 else text).replace(day=1)
    except ValueError:
        raise InvalidInput(f"{name}: a month such as 2026-11", errors={name: "YYYY-MM"}) from None


def _procedure(request: ReportRequest, default: str | None) -> str:
    """The ``procedure`` parameter: one the company runs (else 404, never a query with it)."""
    key = request.params.get("procedure") or default
    if not key:
        raise InvalidInput("give procedure=", errors={"procedure": "required"})
    enabled = request.service.company(request.company.company).procedures
    if key not in enabled:
        raise NotFound(f"procedure '{key}' is not enabled for this company")
    return key


def _next_month(day: dt.date) -> dt.date:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def _label_text(label: Any, locale: str, key: str) -> str:
    text = (
        label if isinstance(label, str) else (label or {}).get(locale) or (label or {}).get("zh-CN")
    )
    return str(text or key)


def tally(
    conn: Any,
    company_id: int,
    tz: zoneinfo.ZoneInfo,
    procedure: str,
    start: dt.date | None,
    end: dt.date | None,
    by: str,
    split: str | None,
    locale: str,
) -> tuple[dict[tuple[str, str], dict[str, int]], dict[str, str]]:
    """The cases of ``procedure`` opened from ``start`` up to ``end`` (days, company time,
    ``end`` excluded; None: unbounded), counted per month and value of their field ``by``,
    each split by the value of ``split`` (``"-"``: no value); and the labels of ``by``'s
    choices, from the procedure versions the cases pinned.

    One query on ``ix_case_created`` (company, opening time): what both the
    ``complaints-monthly`` report and the ``count_cases`` effect count.
    """
    c = t.case
    q = select(c.c.created_at, c.c.fields, c.c.procedure_version_id).where(
        c.c.company_id == company_id, c.c.procedure == procedure
    )
    if start:
        q = q.where(c.c.created_at >= dt.datetime.combine(start, dt.time(), tz).astimezone(dt.UTC))
    if end:
        q = q.where(c.c.created_at < dt.datetime.combine(end, dt.time(), tz).astimezone(dt.UTC))
    labels: dict[str, str] = {}
    counts: dict[tuple[str, str], dict[str, int]] = {}
    seen_versions: set[int] = set()
    for created_at, fields, vid in conn.execute(q.order_by(c.c.created_at)):
        if vid not in seen_versions:  # the choices' labels, from the pinned version
            seen_versions.add(vid)
            definition = conn.execute(
                select(t.procedure_version.c.definition).where(
                    t.procedure_version.c.id == vid,
                    t.procedure_version.c.company_id == company_id,
                )
            ).scalar_one()
            fdef = (definition.get("fields") or {}).get(by) or {}
            for key, label in (fdef.get("choices") or {}).items():
                labels.setdefault(key, _label_text(label, locale, key))
        month = created_at.astimezone(tz).strftime("%Y-%m")
        value = str((fields or {}).get(by) or "-")
        level = str((fields or {}).get(split) or "-") if split else "-"
        cell = counts.setdefault((month, value), {})
        cell[level] = cell.get(level, 0) + 1
    return counts, labels


class ComplaintsMonthly:
    """``complaints-monthly``: complaints by month × category × urgency, the meeting flag.

    Params: ``procedure`` (default ``qp-complaint``), ``category`` / ``urgency`` (the choice
    fields, default ``content`` / ``urgency``), ``since`` / ``until`` (months, ``2026-11``:
    from the start of ``since`` to the end of ``until``), ``threshold`` (default: the
    company's ``meeting_threshold`` of complaint-statistics, else 3), ``lang``.
    """

    name = "complaints-monthly"
    title = "Complaints by month, category and urgency (QP §5.1.3.2)"

    def run(self, request: ReportRequest) -> ReportResult:
        p = request.params
        company = request.company
        locale = p.get("lang") or company.locale
        words = WORDS["en" if locale.startswith("en") else "zh-CN"]
        tz = zoneinfo.ZoneInfo(company.timezone)
        procedure = _procedure(request, "qp-complaint")
        by, urgency = p.get("category") or "content", p.get("urgency") or "urgency"
        stats = company.procedures.get("complaint-statistics")
        threshold = int(
            p.get("threshold")
            or (stats.parameters.get("meeting_threshold") if stats else None)
            or DEFAULT_THRESHOLD
        )
        since, until = _month(p.get("since"), "since"), _month(p.get("until"), "until")
        counts, labels = tally(
            request.conn,
            request.company_id,
            tz,
            procedure,
            since,
            _next_month(until) if until else None,
            by,
            urgency,
            "en" if locale.startswith("en") else "zh-CN",
        )
        rows = []
        for (month, category), cell in sorted(counts.items()):
            total = sum(cell.values())
            meeting = total >= threshold or cell.get("high", 0) > 0
            rows.append(
                [
                    month,
                    labels.get(category, category),
                    cell.get("high", 0),
                    cell.get("medium", 0),
                    cell.get("low", 0),
                    total,
                    words[7] if meeting else words[8],
                ]
            )
        months = sorted({m for m, _ in counts})
        categories = sorted({cat for _, cat in counts})
        chart = Chart(
            title=self.title if words[0] == "Month" else "月度顾客投诉统计(按投诉内容)",
            labels=months,
            series={
                labels.get(cat, cat): [
                    float(sum(counts.get((m, cat), {}).values())) for m in months
                ]
                for cat in categories
            },
            y_title=words[9],
        )
        notes = [f"meeting: {threshold} or more of one category in a month, or any of high urgency"]
        if not rows:
            notes.append("no complaints in this period")
        return ReportResult(list(words[:7]), rows, notes, chart)


class OnTime:
    """``on-time``: per month (when cases closed) and SLA, how many met their deadline.

    Params: ``procedure`` (required), ``since`` / ``until`` (months), ``target`` (a
    percentage such as 98: the KPI, e.g. 管网修漏及时率 98% of the leak repair; each row
    then says whether the month met it), ``lang``.
    """

    name = "on-time"
    title = "On-time rate per SLA and month"

    def run(self, request: ReportRequest) -> ReportResult:
        p = request.params
        svc = request.service
        procedure = _procedure(request, None)
        company = request.company
        zh = not (p.get("lang") or company.locale).startswith("en")
        locale = "zh-CN" if zh else "en"
        tz = zoneinfo.ZoneInfo(company.timezone)
        try:
            target = float(p["target"]) if p.get("target") else None
        except ValueError:
            raise InvalidInput(
                "target: a percentage such as 98", errors={"target": "number"}
            ) from None
        since, until = _month(p.get("since"), "since"), _month(p.get("until"), "until")
        c = t.case
        q = select(c.c.id, c.c.closed_at).where(
            c.c.company_id == request.company_id,
            c.c.status == "closed",
            c.c.procedure == procedure,
        )
        if since:
            q = q.where(c.c.closed_at >= dt.datetime.combine(since, dt.time(), tz))
        if until:
            q = q.where(c.c.closed_at < dt.datetime.combine(_next_month(until), dt.time(), tz))
        tally: dict[tuple[str, str], list[int]] = {}
        labels: dict[str, str] = {}
        for case_id, closed_at in request.conn.execute(q.order_by(c.c.closed_at)):
            month = closed_at.astimezone(tz).strftime("%Y-%m")
            for d in svc.deadlines(company.company, case_id, closed_at):
                if d.state not in ("met", "breached"):
                    continue  # this SLA never ran for the case
                labels[d.id] = d.label.text(locale) if d.label else d.id
                met_late = tally.setdefault((month, d.id), [0, 0])
                met_late[0 if d.state == "met" else 1] += 1
        columns = (
            ["月份", "时限", "按时", "超时", "及时率%", "目标%", "达标"]
            if zh
            else ["Month", "SLA", "On time", "Late", "Rate %", "Target %", "Met"]
        )
        rows = []
        for (month, sla), (met, late) in sorted(tally.items()):
            rate = round(100 * met / (met + late), 1)
            ok = None if target is None else rate >= target
            rows.append(
                [
                    month,
                    labels[sla],
                    met,
                    late,
                    rate,
                    target if target is not None else "",
                    ""
                    if ok is None
                    else (("是" if ok else "否") if zh else ("yes" if ok else "no")),
                ]
            )
        months = sorted({m for m, _ in tally})
        series = {
            labels[sla]: [
                (lambda ml: round(100 * ml[0] / (ml[0] + ml[1]), 1) if ml else 0.0)(
                    tally.get((m, sla))
                )
                for m in months
            ]
            for sla in sorted({s for _, s in tally})
        }
        if target is not None:
            series["目标" if zh else "Target"] = [target] * len(months)
        chart = Chart(
            title="及时率(按月)" if zh else "On-time rate by month",
            labels=months,
            series=series,
            stacked=False,
            y_title="%",
        )
        notes = [] if rows else ["no closed cases with deadlines in this period"]
        return ReportResult(columns, rows, notes, chart)


class Coverage:
    """``coverage``: per month (when cases closed), the share of closed cases on which an
    action was taken — callback coverage (seed 002: every repair called back), surveys.

    Params: ``procedure`` and ``action`` (required), ``ended`` (final steps that count,
    comma-separated; default every final step), ``since`` / ``until`` (months),
    ``target`` (a percentage, e.g. 100), ``lang``.
    """

    name = "coverage"
    title = "Share of closed cases on which an action was taken"

    def run(self, request: ReportRequest) -> ReportResult:
        p = request.params
        procedure = _procedure(request, None)
        proc = request.service.company(request.company.company).procedures[procedure]
        action = p.get("action") or ""
        actions = {a for st in proc.pack.steps.values() for a in st.actions}
        if action not in actions:
            raise InvalidInput(
                f"action: one of {', '.join(sorted(actions))}", errors={"action": "unknown"}
            )
        finals = [k for k, st in proc.pack.steps.items() if st.final]
        ended = [e for e in (p.get("ended") or "").split(",") if e] or finals
        if not set(ended) <= set(finals):
            raise InvalidInput(
                f"ended: final steps of {procedure}: {', '.join(finals)}",
                errors={"ended": "unknown step"},
            )
        zh = not (p.get("lang") or request.company.locale).startswith("en")
        tz = zoneinfo.ZoneInfo(request.company.timezone)
        try:
            target = float(p["target"]) if p.get("target") else None
        except ValueError:
            raise InvalidInput(
                "target: a percentage such as 100", errors={"target": "number"}
            ) from None
        since, until = _month(p.get("since"), "since"), _month(p.get("until"), "until")
        c, j = t.case, t.journal
        q = select(c.c.id, c.c.closed_at).where(
            c.c.company_id == request.company_id,
            c.c.status == "closed",
            c.c.procedure == procedure,
            c.c.step.in_(ended),
        )
        if since:
            q = q.where(c.c.closed_at >= dt.datetime.combine(since, dt.time(), tz))
        if until:
            q = q.where(c.c.closed_at < dt.datetime.combine(_next_month(until), dt.time(), tz))
        closed = request.conn.execute(q).all()
        taken: set[int] = set()
        ids = [r.id for r in closed]
        for at in range(0, len(ids), 500):  # by case, through ix_journal_case
            taken.update(
                request.conn.execute(
                    select(j.c.case_id)
                    .where(
                        j.c.company_id == request.company_id,
                        j.c.case_id.in_(ids[at : at + 500]),
                        j.c.kind == "action",
                        j.c.action == action,
                    )
                    .distinct()
                ).scalars()
            )
        months: dict[str, list[int]] = {}
        for r in closed:
            cell = months.setdefault(r.closed_at.astimezone(tz).strftime("%Y-%m"), [0, 0])
            cell[0] += 1
            cell[1] += r.id in taken
        rows: list[list[Any]] = []
        rates: list[float] = []
        for month, (total, done) in sorted(months.items()):
            rate = round(100 * done / total, 1)
            rates.append(rate)
            ok = None if target is None else rate >= target
            yes, no = ("是", "否") if zh else ("yes", "no")
            rows.append(
                [
                    month,
                    total,
                    done,
                    rate,
                    "" if target is None else target,
                    "" if ok is None else (yes if ok else no),
                ]
            )
        columns = (
            ["月份", "结案数", "已执行", "覆盖率%", "目标%", "达标"]
            if zh
            else ["Month", "Closed", "Done", "Coverage %", "Target %", "Met"]
        )
        series = {action: rates}
        if target is not None:
            series["目标" if zh else "Target"] = [target] * len(rows)
        chart = Chart(
            title=f"{action}: " + ("覆盖率(按月)" if zh else "coverage by month"),
            labels=sorted(months),
            series=series,
            stacked=False,
            y_title="%",
        )
        notes = [] if rows else ["no closed cases in this period"]
        return ReportResult(columns, rows, notes, chart)


class SatisfactionScores:
    """``satisfaction-scores``: per procedure, field and month (of the case's last change),
    the answers of every field a pack marks ``score: satisfaction``, their average on the
    field's scale and the share at or above ``good`` (default: the top two points).

    Params: ``procedure`` (default every enabled one), ``since`` / ``until`` (months),
    ``good``, ``lang``.
    """

    name = "satisfaction-scores"
    title = "Satisfaction scores (fields marked score: satisfaction)"

    def run(self, request: ReportRequest) -> ReportResult:
        p = request.params
        svc = request.service
        rt = svc.company(request.company.company)
        keys = [_procedure(request, None)] if p.get("procedure") else sorted(rt.procedures)
        zh = not (p.get("lang") or request.company.locale).startswith("en")
        locale = "zh-CN" if zh else "en"
        tz = zoneinfo.ZoneInfo(request.company.timezone)
        since, until = _month(p.get("since"), "since"), _month(p.get("until"), "until")
        c = t.case
        totals: dict[tuple[str, str, str], list[float]] = {}
        scales: dict[tuple[str, str], tuple[str, float | None, float | None]] = {}
        for key in keys:
            proc = rt.procedures[key]
            scored = {n: f for n, f in proc.pack.fields.items() if f.score == "satisfaction"}
            if not scored:
                continue
            for n, f in scored.items():
                scales[(key, n)] = (f.label.text(locale), f.min, f.max)
            q = select(c.c.fields, c.c.updated_at).where(
                c.c.company_id == request.company_id, c.c.procedure == key
            )
            if since:
                q = q.where(c.c.updated_at >= dt.datetime.combine(since, dt.time(), tz))
            if until:
                end = dt.datetime.combine(_next_month(until), dt.time(), tz)
                q = q.where(c.c.updated_at < end)
            for fields, updated_at in request.conn.execute(q):
                month = updated_at.astimezone(tz).strftime("%Y-%m")
                for n in scored:
                    value = (fields or {}).get(n)
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        totals.setdefault((key, n, month), []).append(float(value))
        try:
            good_at = float(p["good"]) if p.get("good") else None
        except ValueError:
            raise InvalidInput("good: a score", errors={"good": "number"}) from None
        rows: list[list[Any]] = []
        for (key, n, month), values in sorted(totals.items()):
            label, low, high = scales[(key, n)]
            threshold = good_at if good_at is not None else (high - 1 if high else None)
            good = sum(v >= threshold for v in values) if threshold is not None else 0
            rows.append(
                [
                    month,
                    rt.procedures[key].pack.title.text(locale),
                    label,
                    len(values),
                    round(sum(values) / len(values), 2),
                    "" if high is None else f"{low:g}–{high:g}" if low is not None else high,
                    round(100 * good / len(values), 1) if threshold is not None else "",
                ]
            )
        columns = (
            ["月份", "程序", "评分项", "答复数", "平均分", "分值范围", "满意率%"]
            if zh
            else ["Month", "Procedure", "Score", "Answers", "Average", "Scale", "Good %"]
        )
        months = sorted({r[0] for r in rows})
        series: dict[str, list[float]] = {}
        for r in rows:
            series.setdefault(f"{r[1]} · {r[2]}", [0.0] * len(months))[months.index(r[0])] = r[4]
        chart = Chart(
            title="平均满意度(按月)" if zh else "Average satisfaction by month",
            labels=months,
            series=series,
            stacked=False,
        )
        notes = [] if rows else ["no scores in this period"]
        return ReportResult(columns, rows, notes, chart)


# -- the count_cases effect -------------------------------------------------------------


class CountCasesArgs(BaseModel):
    """``count_cases: {procedure: p, period: field, total: field, into: list, by: f, split: f}``

    Counts the company's cases of ``procedure`` opened in the month (``2026-11``) or year
    (``2026``) held by the text field ``period``: the number into the integer field
    ``total``; one item per value of their field ``by`` into the list field ``into`` (item
    fields ``value``, ``cases``, optionally ``label``; with ``split``, an integer item field
    per value of that field of theirs)."""

    model_config = ConfigDict(extra="forbid")
    procedure: str = Field(pattern=PACK_RE)
    period: str = Field(pattern=KEY_RE)
    total: str | None = Field(default=None, pattern=KEY_RE)
    into: str | None = Field(default=None, pattern=KEY_RE)
    by: str | None = Field(default=None, pattern=KEY_RE)
    split: str | None = Field(default=None, pattern=KEY_RE)

    @model_validator(mode="after")
    def _shape(self) -> CountCasesArgs:
        if self.total is None and self.into is None:
            raise ValueError("say where the count goes: total: (a field), into: (a list), or both")
        if (self.into is None) != (self.by is None):
            raise ValueError("into: (a list field) and by: (the field to group by) go together")
        if self.split is not None and self.into is None:
            raise ValueError("split: counts per item of into: (a list field)")
        return self


#: the item fields of an ``into:`` list the effect fills (``value`` and ``cases`` required)
ITEM_FIELDS = {"value": ("text", "choice"), "label": ("text",), "cases": ("integer",)}


def _a(types: tuple[str, ...]) -> str:
    return " or ".join(("an " if t[0] in "aeiou" else "a ") + t for t in types)


def _check_count(args: CountCasesArgs, pack: PackDef) -> list[Problem]:
    out: list[Problem] = []

    def field(key: str, name: str, types: tuple[str, ...]) -> FieldDef | None:
        fdef = pack.fields.get(name)
        if fdef is None:
            out.append(Problem((key,), "K106", f"unknown field '{name}'", _fields_hint(name, pack)))
        elif fdef.type not in types:
            out.append(
                Problem((key,), "K111", f"field '{name}' is {_a((fdef.type,))}, not {_a(types)}")
            )
            return None
        return fdef

    field("period", args.period, ("text",))
    if args.total:
        field("total", args.total, ("integer",))
    listed = field("into", args.into, ("list",)) if args.into else None
    if listed is not None:
        of = listed.of or {}
        for name, types in ITEM_FIELDS.items():
            item = of.get(name)
            if item is None and name != "label":  # label is optional
                out.append(
                    Problem(
                        ("into",),
                        "K106",
                        f"the items of '{args.into}' have no field '{name}'",
                        "count_cases fills each item's value (text), cases (integer), "
                        "label (text, optional) and, with split:, an integer per value",
                    )
                )
            elif item is not None and item.type not in types:
                out.append(
                    Problem(
                        ("into",),
                        "K111",
                        f"item field '{name}' of '{args.into}' is {_a((item.type,))}, "
                        f"not {_a(types)}",
                    )
                )
    return out


def period_range(text: Any) -> tuple[dt.date, dt.date] | None:
    """``2026-11`` → that month, ``2026`` → that year, as [first day, day after); else None."""
    if not isinstance(text, str):
        return None
    try:
        if len(text) == 4 and text.isdigit():
            year = int(text)
            return dt.date(year, 1, 1), dt.date(year + 1, 1, 1)
        if len(text) == 7 and text[4] == "-":
            first = dt.date(int(text[:4]), int(text[5:]), 1)
            return first, _next_month(first)
    except ValueError:
        return None
    return None


def _apply_count(change: Change, args: CountCasesArgs, rule_id: str) -> None:
    ctx = change.context
    company, period = ctx["company"], change.fields.get(args.period)
    span = period_range(period)
    if span is None:
        if change.refusal is None:
            label = change.procedure.pack.fields[args.period].label
            change.refusal = (
                rule_id,
                f"{label.text(company.locale)}: 'YYYY-MM' (a month) or 'YYYY' (a year), "
                f"not {period!r}",
            )
        return
    tz = zoneinfo.ZoneInfo(company.timezone)
    locale = "en" if company.locale.startswith("en") else "zh-CN"
    by = args.by or "-"  # no grouping: one group of every case
    counts, labels = tally(
        ctx["conn"], ctx["company_id"], tz, args.procedure, *span, by, args.split, locale
    )
    groups: dict[str, dict[str, int]] = {}
    for (_, value), cell in counts.items():
        merged = groups.setdefault(value, {})
        for level, n in cell.items():
            merged[level] = merged.get(level, 0) + n
    cases = sum(sum(cell.values()) for cell in groups.values())
    fields = change.procedure.pack.fields
    new: dict[str, Any] = {}
    if args.total:
        new[args.total] = cases
    if args.into:
        fdef = fields[args.into]
        of = fdef.of or {}
        old = {
            str(it.get("value")): it.get("id")
            for it in change.fields.get(args.into) or []
            if isinstance(it, dict)
        }
        items = []
        # the most frequent first (what a complaint meeting looks at), then by value
        for value, cell in sorted(groups.items(), key=lambda g: (-sum(g[1].values()), g[0])):
            item: dict[str, Any] = {"value": value, "cases": sum(cell.values())}
            if "label" in of:
                item["label"] = labels.get(value, value)
            for level, n in cell.items():
                if level in of and level not in ITEM_FIELDS and of[level].type == "integer":
                    item[level] = n
            for name, sub in of.items():  # split values nobody had: 0, not "no value"
                if name not in item and name not in ITEM_FIELDS and sub.type == "integer":
                    if args.split:
                        item[name] = 0
            if value in old:
                item["id"] = old[value]
            items.append(item)
        new[args.into] = coerce(fdef, items, change.fields.get(args.into))
    for name, stored in new.items():
        if change.fields.get(name) != stored:
            change.note("field_set", rule_id, field=name, old=change.fields.get(name), new=stored)
            change.fields[name] = stored
    first, after = span
    change.note(
        "counted",
        rule_id,
        procedure=args.procedure,
        period=period,
        since=first.isoformat(),
        until=(after - dt.timedelta(days=1)).isoformat(),
        cases=cases,
        groups=len(groups),
    )


COUNT_CASES = EffectType(
    "count_cases",
    CountCasesArgs,
    _apply_count,
    _check_count,
    "count the company's cases of a procedure opened in a month or year (a field of this "
    "case), in total and per value of one of their fields, split by another",
)


@hookimpl
def kefu_effect_types() -> list[EffectType]:
    return [COUNT_CASES]


@hookimpl
def kefu_reports() -> list[Any]:
    return [ComplaintsMonthly(), OnTime(), Coverage(), SatisfactionScores()]
