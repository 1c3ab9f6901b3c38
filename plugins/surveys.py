"""Built-in plugin ``surveys``: the ``survey`` field type, a questionnaire of scored topics.

A pack declares the questionnaire on the field::

    fields:
      satisfaction_survey:
        type: survey
        label: {zh-CN: 满意度调查, en: Satisfaction survey}
        options:
          scale: [1, 5]                 # lowest and highest score (default 1–5)
          topics:                       # each topic is scored on the scale
            attitude: {zh-CN: 服务态度, en: Attitude}
            timeliness: {zh-CN: 及时性, en: Timeliness}
            quality: {zh-CN: 维修质量, en: Quality of the repair}
          comment: true                 # a free-text comment may come with the scores

A form sends ``{"scores": {"attitude": 5, "timeliness": 4, "quality": 3}, "comment": "…"}``;
every topic must be scored. Rules see the field as a number, **the average score** rounded
to two decimals, so ``satisfaction_survey < 3`` finds unhappy customers. The stored value
keeps every score and the average for reports.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core import hookimpl
from core.cases.reports import ReportRequest, ReportResult
from core.spec.definitions import KEY_RE, FieldDef, LabelIn
from core.spec.fields import FieldValueError
from core.storage import schema as t


class SurveyOptions(BaseModel):
    """``options:`` of a survey field: the score scale, the topics, a free comment."""

    model_config = ConfigDict(extra="forbid")
    scale: tuple[int, int] = (1, 5)
    topics: dict[str, LabelIn] = Field(min_length=1, max_length=50)
    comment: bool = True

    @model_validator(mode="after")
    def _check(self) -> SurveyOptions:
        import re

        low, high = self.scale
        if not 0 <= low < high <= 100:
            raise ValueError(
                f"scale must be [low, high] with 0 ≤ low < high ≤ 100, not [{low}, {high}]"
            )
        for name in self.topics:
            if not re.match(KEY_RE, name):
                raise ValueError(
                    f"topic '{name}' must be a key like 'attitude' (lowercase, digits, _)"
                )
        return self


class SurveyField:
    """The ``survey`` field type: a score per topic, and an optional comment."""

    name = "survey"
    fact_kind = "number"
    options_model = SurveyOptions

    def _options(self, fdef: FieldDef) -> SurveyOptions:
        return SurveyOptions.model_validate(fdef.options)

    def coerce(self, fdef: FieldDef, value: Any) -> Any:
        opts = self._options(fdef)
        if not isinstance(value, dict):
            raise FieldValueError('a survey is {"scores": {topic: score, ...}, "comment": "..."}')
        unknown = set(value) - {"scores", "comment", "average"}
        if unknown:
            raise FieldValueError(
                f"unknown key(s) {', '.join(sorted(unknown))}: a survey has scores and comment"
            )
        scores = value.get("scores")
        if not isinstance(scores, dict):
            raise FieldValueError("scores must be a mapping of topic: score")
        low, high = opts.scale
        out: dict[str, int] = {}
        for topic in scores:
            if topic not in opts.topics:
                raise FieldValueError(f"unknown topic '{topic}' (topics: {', '.join(opts.topics)})")
        for topic in opts.topics:
            score = scores.get(topic)
            if isinstance(score, str) and score.strip().isdigit():
                score = int(score)
            if isinstance(score, bool) or not isinstance(score, int):
                raise FieldValueError(f"topic '{topic}' needs a whole-number score {low}–{high}")
            if not low <= score <= high:
                raise FieldValueError(f"topic '{topic}': {score} is outside {low}–{high}")
            out[topic] = score
        comment = value.get("comment")
        if comment is not None and not opts.comment:
            raise FieldValueError("this survey takes no comment")
        if comment is not None and (not isinstance(comment, str) or len(comment) > 5000):
            raise FieldValueError("comment must be text of at most 5,000 characters")
        stored: dict[str, Any] = {"scores": out, "average": round(sum(out.values()) / len(out), 2)}
        if comment:
            stored["comment"] = comment.strip()
        return stored

    def fact(self, fdef: FieldDef, stored: Any) -> float | None:
        if not isinstance(stored, dict) or "average" not in stored:
            return None
        return float(stored["average"])

    def json_schema(self, fdef: FieldDef) -> dict[str, Any]:
        opts = self._options(fdef)
        low, high = opts.scale
        props: dict[str, Any] = {
            "scores": {
                "type": "object",
                "additionalProperties": False,
                "required": list(opts.topics),
                "properties": {
                    t: {"type": "integer", "minimum": low, "maximum": high, "title": label.text()}
                    for t, label in opts.topics.items()
                },
            }
        }
        if opts.comment:
            props["comment"] = {"type": "string", "maxLength": 5000}
        return {
            "type": "object",
            "required": ["scores"],
            "additionalProperties": False,
            "properties": props,
        }


class SatisfactionReport:
    """``satisfaction``: per procedure and topic, the number of answers and the average score.

    Params: ``procedure`` (only that one), ``since`` / ``until`` (ISO dates, days in the
    company's time zone, by the case's last update).
    """

    name = "satisfaction"
    title = "Satisfaction by topic (survey fields)"

    def run(self, request: ReportRequest) -> ReportResult:
        from sqlalchemy import select

        c = t.case
        q = select(c.c.procedure, c.c.fields, c.c.procedure_version_id).where(
            c.c.company_id == request.company_id
        )
        if request.params.get("procedure"):
            q = q.where(c.c.procedure == request.params["procedure"])
        if (since := request.day_start("since")) is not None:
            q = q.where(c.c.updated_at >= since)
        if (until := request.day_start("until")) is not None:
            q = q.where(c.c.updated_at < until)
        pv = t.procedure_version
        survey_fields: dict[int, list[str]] = {}
        totals: dict[tuple[str, str, str], list[int]] = {}
        for procedure, fields, vid in request.conn.execute(q):
            if vid not in survey_fields:
                definition = request.conn.execute(
                    select(pv.c.definition).where(pv.c.id == vid)
                ).scalar_one()
                survey_fields[vid] = [
                    n
                    for n, f in (definition.get("fields") or {}).items()
                    if f.get("type") == "survey"
                ]
            for name in survey_fields[vid]:
                value = (fields or {}).get(name)
                if isinstance(value, dict):
                    for topic, score in (value.get("scores") or {}).items():
                        totals.setdefault((procedure, name, topic), []).append(int(score))
        rows = [
            [p, f, topic, len(s), round(sum(s) / len(s), 2)]
            for (p, f, topic), s in sorted(totals.items())
        ]
        return ReportResult(
            ["procedure", "field", "topic", "answers", "average"],
            rows,
            [] if rows else ["no survey answers yet"],
        )


@hookimpl
def kefu_field_types() -> list[SurveyField]:
    return [SurveyField()]


@hookimpl
def kefu_reports() -> list[SatisfactionReport]:
    return [SatisfactionReport()]
