"""Derived values and who acts: what conditions may compute, what each value is, and
that no input — however deep or odd — makes the condition parser raise anything but a
located diagnostic."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.rules.derive import MAX_WORKDAY_SPAN, Derivations, compute, matcher
from core.rules.expr import ExprError, FieldType, parse_condition, parse_value
from core.rules.reference import holds
from core.spec.procedures import derive_env
from core.time.calendars import WorkingCalendar
from tests.unit.test_rules_engines import conditions as rule_conditions
from tests.unit.test_rules_engines import facts_dicts

FIELDS = {
    "shipped_on": FieldType("date"),
    "found_on": FieldType("date"),
    "reported_at": FieldType("datetime"),
    "qty": FieldType("integer"),
    "price": FieldType("money"),
    "limit": FieldType("money"),
    "author": FieldType("person"),
    "name": FieldType("text"),
    "urgency": FieldType("choice", ("high", "low")),
    "stopped": FieldType("boolean"),
}
CAL = WorkingCalendar(None, "Asia/Shanghai")
NOW = dt.datetime(2026, 11, 6, 2, 0, tzinfo=dt.UTC)  # Friday 10:00 in Shanghai


class Who:
    def __init__(self, username: str, roles: set[str] = set(), departments: set[str] = set()):  # noqa: B006  # read-only defaults
        self.username = username
        self.roles = frozenset(roles)
        self.departments = frozenset(departments)


def facts_for(values: dict[str, Any]) -> dict[str, Any]:
    """Facts as the case service builds them: dates as day numbers, datetimes as seconds."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        if isinstance(v, dt.datetime):
            out[k] = int(v.timestamp())
        elif isinstance(v, dt.date):
            out[k] = v.toordinal()
        else:
            out[k] = v
    return out


def check(text: str, values: dict[str, Any], actor: Who | None = None) -> bool:
    derived = Derivations()
    cond = parse_condition(text, FIELDS, {"days": 15}, derived)
    facts = compute(derived, facts_for(values), derive_env(NOW, CAL, actor))
    return holds(cond, facts)


D = dt.date


@pytest.mark.parametrize(
    ("text", "values", "want"),
    [
        # calendar days: the 15th day after shipping is still "within 15 days"
        (
            "days_between(shipped_on, found_on) <= 15",
            {"shipped_on": D(2026, 10, 18), "found_on": D(2026, 11, 2)},
            True,
        ),
        (
            "days_between(shipped_on, found_on) <= 15",
            {"shipped_on": D(2026, 10, 17), "found_on": D(2026, 11, 2)},
            False,
        ),
        (
            "days_between(shipped_on, found_on) <= param.days",
            {"shipped_on": D(2026, 10, 17), "found_on": D(2026, 11, 2)},
            False,
        ),
        # a missing input: no value, so the comparison is false and its negation true
        ("days_between(shipped_on, found_on) <= 15", {"found_on": D(2026, 11, 2)}, False),
        ("not days_between(shipped_on, found_on) <= 15", {"found_on": D(2026, 11, 2)}, True),
        # the National Day week 2026 (Oct 1-7 off, Sep 27 / Oct 10 worked): from Sep 30
        # to Oct 9 is 9 calendar days but 2 working days (Oct 8, Oct 9)
        (
            "working_days_between(shipped_on, found_on) == 2",
            {"shipped_on": D(2026, 9, 30), "found_on": D(2026, 10, 9)},
            True,
        ),
        (
            "working_days_between(found_on, shipped_on) == -2",
            {"shipped_on": D(2026, 9, 30), "found_on": D(2026, 10, 9)},
            True,
        ),
        (
            "days_between(shipped_on, found_on) == 9",
            {"shipped_on": D(2026, 9, 30), "found_on": D(2026, 10, 9)},
            True,
        ),
        # now and today: Friday 10:00 company time
        (
            "hours_since(reported_at) > 24",
            {"reported_at": dt.datetime(2026, 11, 5, 1, 59, tzinfo=dt.UTC)},
            True,
        ),
        (
            "hours_since(reported_at) > 24",
            {"reported_at": dt.datetime(2026, 11, 5, 2, 0, tzinfo=dt.UTC)},
            False,
        ),
        ("days_since(found_on) == 4", {"found_on": D(2026, 11, 2)}, True),
        ("reported_at < now", {"reported_at": dt.datetime(2026, 11, 5, tzinfo=dt.UTC)}, True),
        ("found_on == today", {"found_on": D(2026, 11, 6)}, True),
        # arithmetic on money, and two fields compared
        ("qty * price > limit", {"qty": 40, "price": 12.5, "limit": 400}, True),
        ("qty * price > limit", {"qty": 40, "price": 10, "limit": 400}, False),
        ("price + 0.1 == 0.3", {"price": 0.2}, True),  # rounded, not 0.30000000000000004
        ("qty / price > 1", {"qty": 1, "price": 0}, False),  # no value: divided by zero
        ("limit - qty * price >= -1", {"qty": 2, "price": 1, "limit": 1}, True),
        ("qty > limit", {"qty": 5}, False),
        ("not qty > limit", {"qty": 5}, True),
        ('urgency == "high" and stopped != false', {"urgency": "high", "stopped": True}, True),
    ],
)
def test_values(text: str, values: dict[str, Any], want: bool) -> None:
    assert check(text, values) is want


def test_who_acts() -> None:
    li = Who("li", {"quality_manager"}, {"quality"})
    assert check("actor.username == author", {"author": "li"}, li)
    assert not check("actor.username != author", {"author": "li"}, li)
    assert check('"quality_manager" in actor.roles', {}, li)
    assert check('"sales" not in actor.roles', {}, li)
    assert check('actor.department == "quality"', {}, li)
    assert check('actor.department != "sales"', {}, li)
    assert check('actor.username in ["li", "wang"]', {}, li)
    # nobody acting (a deadline replayed): the actor's facts are unknown, never true
    assert not check('"quality_manager" in actor.roles', {}, None)
    assert not check("actor.username == author", {"author": "li"}, None)


def test_the_derived_fact_is_named_after_its_text_and_shared() -> None:
    derived = Derivations()
    a = parse_condition("days_between(shipped_on, found_on) > 3", FIELDS, {}, derived)
    b = parse_condition("days_between(shipped_on, found_on) <= 15", FIELDS, {}, derived)
    c = parse_condition("qty >= limit", FIELDS, {}, derived)
    assert a["field"] == b["field"] == "_days_between_shipped_on_found_on"
    assert c["field"] == "_qty_ge_limit"
    assert len(derived.exprs) == 2


def test_working_days_beyond_ten_years_have_no_value() -> None:
    far = D(2026, 1, 1) + dt.timedelta(days=MAX_WORKDAY_SPAN + 1)
    assert not check(
        "working_days_between(shipped_on, found_on) > 0",
        {"shipped_on": D(2026, 1, 1), "found_on": far},
    )
    assert check(
        "days_between(shipped_on, found_on) > 0", {"shipped_on": D(2026, 1, 1), "found_on": far}
    )


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("days_between(shipped_on, found_on)", "integer"),
        ("hours_since(reported_at)", "number"),
        ("qty * price", "money"),
        ("qty + 1", "integer"),
        ("qty / 2", "number"),
        ("qty > limit", "boolean"),
        ("actor.username", "person"),
        ("found_on", "date"),
    ],
)
def test_kinds(text: str, kind: str) -> None:
    assert parse_value(text, FIELDS, {}, Derivations())[1] == kind


@pytest.mark.parametrize(
    ("text", "code", "at"),
    [
        ("days_between(shipped_on, name) > 1", "K210", "name"),
        ("days_between(shipped_on) > 1", "K210", "days_between(shipped_on)"),
        ("hours_since(found_on) > 1", "K210", "found_on"),
        ("qty + name > 1", "K210", "name"),
        ("qty > found_on", "K210", "qty > found_on"),
        ("name < author", "K205", "name < author"),
        ("actor.name == 1", "K212", "actor.name"),
        ("actor.roles == 1", "K212", "actor.roles"),
        ("quality in actor.roles", "K212", "quality"),
        ("actor.department > 1", "K212", "actor.department > 1"),
        ("weeks_between(found_on, shipped_on) > 1", "K203", "weeks_between"),
        ("qty % 2 == 1", "K203", "qty % 2"),
        ("not " * 3000 + "stopped", "K213", ""),
        ("(" * 1000 + "stopped" + ")" * 1000, "K213", ""),
        ("-" * 500 + "qty > 1", "K213", ""),
    ],
)
def test_mistakes(text: str, code: str, at: str) -> None:
    with pytest.raises(ExprError) as info:
        parse_condition(text, FIELDS, {}, Derivations())
    assert info.value.code == code, info.value
    assert text[info.value.col :].startswith(at), (info.value.col, text[info.value.col :][:30])


# -- fuzz: any text gives IR or a diagnostic, never another exception -------------------------
TOKENS = st.sampled_from(
    [
        "not ",
        "and ",
        "or ",
        "(",
        ")",
        "[",
        "]",
        ",",
        " == ",
        " != ",
        " < ",
        " >= ",
        " in ",
        " is ",
        "None",
        "qty",
        "price",
        "limit",
        "found_on",
        "name",
        "urgency",
        "stopped",
        "actor.username",
        "actor.roles",
        "actor.department",
        "actor",
        "param.days",
        "param",
        "days_between(",
        "working_days_between(",
        "hours_since(",
        "now",
        "today",
        "1",
        "-",
        "+",
        "*",
        "/",
        "2.5",
        '"high"',
        '"x"',
        'date("2026-10-01")',
        "true",
        "lambda",
        ":",
        ".",
        "==",
        "=",
        "'",
        '"',
        "\n",
        "严重",
        "{",
        "}",
    ]
)


@settings(max_examples=2000, deadline=None)
@given(st.lists(TOKENS, max_size=40).map("".join))
def test_the_parser_never_raises_anything_but_a_diagnostic(text: str) -> None:
    try:
        parse_condition(text, FIELDS, {"days": 15}, Derivations())
    except ExprError as exc:
        assert exc.code.startswith("K2") and 0 <= exc.col <= len(text)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 6000),
    st.sampled_from(["not ", "(", "-", "- -", "days_between(", "qty + ", "[", "not ("]),
)
def test_deep_nesting_is_a_diagnostic(depth: int, opener: str) -> None:
    closer = {"(": ")", "days_between(": ", found_on)", "[": "]", "not (": ")"}.get(opener, "")
    text = opener * depth + "qty" + closer * depth + " > 1"
    try:
        parse_condition(text, FIELDS, {}, Derivations())
    except ExprError as exc:
        assert exc.code.startswith("K2")


@settings(max_examples=600, deadline=None)
@given(cond=rule_conditions, facts=st.lists(facts_dicts(), min_size=1, max_size=6))
def test_compiled_item_conditions_agree_with_the_reference(
    cond: dict[str, Any], facts: list[dict[str, Any]]
) -> None:
    # list conditions run an item condition per item as a Python function: it must say
    # what the reference evaluator says, types kept apart and missing facts false
    test = matcher(cond)
    for f in facts:
        assert test(f) is holds(cond, f), (cond, f)


def test_values_that_cannot_be_computed_have_no_value() -> None:
    # datetimes at the end of Python's range overflow when moved to company time, and
    # products of huge numbers are not finite: the comparison is false, nothing raises
    end = dt.datetime(9999, 12, 31, 23, tzinfo=dt.UTC)
    assert not check(
        "days_between(reported_at, found_on) > 0", {"reported_at": end, "found_on": D(2026, 1, 1)}
    )
    assert check(
        "not days_between(reported_at, found_on) > 0",
        {"reported_at": end, "found_on": D(2026, 1, 1)},
    )
    assert not check("price * price > 1", {"price": 1e308})
    assert not check("price * price - price * price == 0", {"price": 1e308})


def test_item_conditions_see_the_moment_and_the_actor() -> None:
    item = FieldType(
        "list",
        of=(
            ("due", FieldType("date")),
            ("owner", FieldType("person")),
            ("done", FieldType("boolean")),
        ),
    )
    fields = {**FIELDS, "tasks": item}
    derived = Derivations()
    overdue = parse_condition("any(tasks, not done and due < today)", fields, {}, derived)
    mine = parse_condition("count(tasks, owner == actor.username) == 1", fields, {}, derived)
    tasks = [
        {"id": 1, "due": D(2026, 11, 5).toordinal(), "owner": "li", "done": True},
        {"id": 2, "due": D(2026, 11, 7).toordinal(), "owner": "chen"},
    ]
    for today, who, late in ((D(2026, 11, 6), "li", False), (D(2026, 11, 8), "chen", True)):
        now = dt.datetime.combine(today, dt.time(2), tzinfo=dt.UTC)
        env = dataclasses.replace(
            derive_env(now, CAL, Who(who)), lists={"tasks": tasks}, matcher=derived.compiled
        )
        facts = compute(derived, {}, env)
        assert holds(overdue, facts) is late
        assert holds(mine, facts)
    # nobody acting (a deadline replayed): no owner matches
    facts = compute(
        derived, {}, dataclasses.replace(derive_env(NOW, CAL, None), lists={"tasks": tasks})
    )
    assert not holds(mine, facts)
