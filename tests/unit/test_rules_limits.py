"""Engine limits are load-time diagnostics: each code fires just over its limit and not
just under it. The thresholds come from measurements recorded in core.rules.limits."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from core.rules import limits
from core.rules.durable_compiler import check_limits, fnv1a32, to_durable
from core.rules.durable_runtime import DurableEvaluator, _engine
from core.rules.ir import CompiledRule, Cond, RuleSet
from core.rules.reference import ReferenceEvaluator

_names = itertools.count()


def one_rule(cond: Cond, rid: str = "r") -> RuleSet:
    return RuleSet.of(f"limits:{next(_names)}", [CompiledRule(rid, cond)])


def cmp(op: str, field: str, value: Any) -> Cond:
    return {"cmp": op, "field": field, "value": value}


def codes(ruleset: RuleSet, fact_properties: int = 50) -> set[str]:
    return {p.code for p in check_limits(ruleset, fact_properties)}


def test_a_realistic_ruleset_has_no_problems() -> None:
    rules = [
        CompiledRule(
            f"r{i}",
            {
                "and": [
                    cmp("eq", "category", "quality"),
                    {"or": [cmp("eq", "line_stopped", True), cmp("ge", "affected_qty", 100 + i)]},
                ]
            },
        )
        for i in range(300)
    ]
    assert check_limits(RuleSet.of("limits:ok", rules), 40) == []


def test_problems_name_the_rule_and_say_what_to_do() -> None:
    wide = {"and": [cmp("eq", "y", 1), {"or": [cmp("eq", "x", i) for i in range(300)]}]}
    (problem,) = check_limits(one_rule(wide, "too_wide"), 10)
    assert problem.code == "K302" and problem.rule_id == "too_wide"
    assert "too_wide" in problem.message and "300" in problem.message
    assert problem.hint


def test_k301_properties_per_fact() -> None:
    def rule(n: int) -> RuleSet:
        return one_rule({"and": [cmp("eq", f"f{i}", 1) for i in range(n)]})

    # a fact carries one property per field compared, plus id and sid
    assert "K301" not in codes(rule(limits.MAX_FACT_PROPERTIES - 2), 500)
    assert "K301" in codes(rule(limits.MAX_FACT_PROPERTIES - 1), 500)
    # a rule cannot compare more fields than a fact has
    assert "K301" not in codes(rule(limits.MAX_FACT_PROPERTIES - 1), 100)
    # presence flags are properties too
    with_flags = {
        "and": [cmp("eq", f"f{i}", 1) for i in range(120)] + [{"set": f"f{i}"} for i in range(119)]
    }
    assert "K301" in codes(one_rule(with_flags), 500)
    # one fact serves every C ruleset, so fields add up across rules
    spread = RuleSet.of(
        "limits:spread",
        [
            CompiledRule(f"r{i}", cmp("eq", f"f{i}", 1))
            for i in range(limits.MAX_FACT_PROPERTIES - 1)
        ],
    )
    (problem,) = check_limits(spread, 500)
    assert problem.code == "K301" and problem.rule_id is None


def test_k302_conditions_under_one_node() -> None:
    def rule(n: int) -> RuleSet:
        return one_rule({"and": [cmp("eq", "y", 1), {"or": [cmp("eq", "x", i) for i in range(n)]}]})

    assert codes(rule(limits.MAX_NODE_CHILDREN)) == set()
    assert codes(rule(limits.MAX_NODE_CHILDREN + 1)) == {"K302"}


def test_k303_parts_that_can_hold_at_once() -> None:
    # root: the sentinel and y == 1; under y: n tests on different fields, all can hold
    def rule(n: int) -> RuleSet:
        return one_rule(
            {"and": [cmp("eq", "y", 1), {"or": [cmp("gt", f"x{i}", 0) for i in range(n)]}]}
        )

    assert codes(rule(limits.STACK_BUDGET - 1)) == set()
    assert codes(rule(limits.STACK_BUDGET)) == {"K303"}


def test_k303_equal_values_on_one_field_cannot_hold_together() -> None:
    # `x == 1 or x == 2 or ...` is one match at most: no stack problem at 200
    rule = one_rule({"and": [cmp("eq", "y", 1), {"or": [cmp("eq", "x", i) for i in range(200)]}]})
    assert codes(rule) == set()


def test_k304_absence_tests_under_one_node() -> None:
    def rule(n: int) -> RuleSet:
        return one_rule(
            {"and": [cmp("eq", "y", 1), {"or": [{"unset": f"a{i}"} for i in range(n)]}]}
        )

    assert "K304" not in codes(rule(limits.MAX_NODE_ABSENCE))
    assert "K304" in codes(rule(limits.MAX_NODE_ABSENCE + 1))


def nested_groups(groups: int) -> Cond:
    """and(a, or(b, and(c, or(d, ...)))): alternating groups do not flatten; the
    outermost is an `and` (a top-level `or` would become separate rules)."""
    cond: Cond = cmp("eq", "z", 1)
    for i in range(groups):
        if (groups - 1 - i) % 2 == 0:
            cond = {"and": [cmp("eq", f"a{i}", 1), cond]}
        else:
            cond = {"or": [cmp("eq", f"b{i}", 1), cond]}
    return cond


def test_k305_nested_groups() -> None:
    assert codes(one_rule(nested_groups(limits.MAX_GROUPS_PER_RULE))) == set()
    assert codes(one_rule(nested_groups(limits.MAX_GROUPS_PER_RULE + 1))) == {"K305"}


def test_k305_matches_the_c_core() -> None:
    # the deepest allowed rule runs and agrees with the reference; one group more is the
    # C core's error 113 when compiled without the check
    ruleset = one_rule(nested_groups(limits.MAX_GROUPS_PER_RULE))
    ev = DurableEvaluator()
    try:
        for facts, fires in (
            ({"z": 1}, False),
            ({f"a{i}": 1 for i in range(15)} | {"z": 1}, True),
            ({"a14": 1, "b13": 1}, True),
        ):
            assert ev.evaluate(ruleset, facts) == ({"r"} if fires else set())
            assert ReferenceEvaluator().evaluate(ruleset, facts) == ({"r"} if fires else set())
    finally:
        ev.close()
    dre = _engine()
    deeper = to_durable(nested_groups(limits.MAX_GROUPS_PER_RULE + 1))
    with pytest.raises(dre.error, match="113"):
        dre.create_ruleset(
            f"limits-probe-{next(_names)}", json.dumps({"r": {"all": [{"m": deeper}]}})
        )


def test_k306_chained_or_groups_multiply() -> None:
    def rule(k: int) -> RuleSet:
        return one_rule(
            {"and": [{"or": [cmp("eq", f"a{i}", 1), cmp("eq", f"b{i}", 1)]} for i in range(k)]}
        )

    assert codes(rule(6)) == set()  # 2**6 = 64 paths
    assert codes(rule(7)) == {"K306"}  # 128


def test_k306_firings_are_what_the_engine_really_does() -> None:
    # (a or b) and (c or d) with all four true fires the rule once per path in the C core
    dre = _engine()
    h = dre.create_ruleset(
        f"limits-probe-{next(_names)}",
        json.dumps(
            {
                "r": {
                    "all": [
                        {
                            "m": {
                                "$and": [
                                    {"$or": [{"$eq": {"a": 1}}, {"$eq": {"b": 1}}]},
                                    {"$or": [{"$eq": {"c": 1}}, {"$eq": {"d": 1}}]},
                                ]
                            }
                        }
                    ]
                }
            }
        ),
    )
    _, off = dre.assert_fact(h, json.dumps({"id": "1", "sid": "s", "a": 1, "b": 1, "c": 1, "d": 1}))
    fired = 0
    msg = (dre.start_action_for_state(h, off) or (None, None))[1]
    while msg:
        fired += msg.startswith('{"r"')
        msg = dre.complete_and_start_action(h, off)
    assert fired == 4


def test_k307_numbers_must_compare_exactly() -> None:
    assert codes(one_rule(cmp("eq", "x", 2**53))) == set()
    assert codes(one_rule(cmp("eq", "x", -(2**53)))) == set()
    assert codes(one_rule(cmp("eq", "x", 2**53 + 1))) == {"K307"}
    assert codes(one_rule(cmp("lt", "x", float("inf")))) == {"K307"}
    assert codes(one_rule(cmp("ne", "x", float("nan")))) == {"K307"}


# two field names whose compiled properties share one 32-bit FNV-1a hash (found by search)
COLLIDING = ("fltzx", "f23ad")


def test_k308_field_names_with_one_engine_hash() -> None:
    a, b = COLLIDING
    assert fnv1a32("N" + a) == fnv1a32("N" + b)
    both = RuleSet.of(
        "limits:coll", [CompiledRule("ra", cmp("eq", a, 1)), CompiledRule("rb", cmp("eq", b, 2))]
    )
    assert codes(both) == {"K308"}
    near = RuleSet.of(
        "limits:nocoll",
        [CompiledRule("ra", cmp("eq", a, 1)), CompiledRule("rb", cmp("eq", "f23ae", 2))],
    )
    assert codes(near) == set()


def test_k308_the_core_really_confuses_colliding_names() -> None:
    # the reason for K308: a rule on one name fires for a fact carrying only the other
    a, b = COLLIDING
    dre = _engine()
    h = dre.create_ruleset(
        f"limits-probe-{next(_names)}", json.dumps({"r": {"all": [{"m": {"$eq": {"N" + a: 1}}}]}})
    )
    code, off = dre.assert_fact(h, json.dumps({"id": "1", "sid": "s", "N" + b: 1}))
    msg = (dre.start_action_for_state(h, off) or (None, None))[1]
    assert code == 0 and msg and msg.startswith('{"r"')
    assert ReferenceEvaluator().evaluate(one_rule(cmp("eq", a, 1)), {b: 1}) == frozenset()


def test_hash_matches_the_c_core_constants() -> None:
    # HASH_ID, HASH_SID (state.h) and HASH_FORWARD (rete.c) of durable-rules 2.0.28
    assert fnv1a32("id") == 926444256
    assert fnv1a32("sid") == 3593476751
    assert fnv1a32("$forward") == 739185624


def test_k309_conditions_too_large_to_analyse() -> None:
    assert "K309" not in codes(one_rule({"and": [cmp("gt", "x", i) for i in range(19_000)]}))
    assert "K309" in codes(
        one_rule({"and": [cmp("gt", "x", i) for i in range(limits.MAX_MODEL_NODES + 1)]})
    )


def test_k310_rules_per_ruleset() -> None:
    def ruleset(n: int) -> RuleSet:
        return RuleSet.of(
            f"limits:{next(_names)}", [CompiledRule(f"r{i}", cmp("eq", "x", i)) for i in range(n)]
        )

    assert codes(ruleset(limits.MAX_RULES_PER_RULESET)) == set()
    assert codes(ruleset(limits.MAX_RULES_PER_RULESET + 1)) == {"K310"}


def test_k311_invalid_conditions() -> None:
    assert codes(one_rule(cmp("like", "x", "a%"))) == {"K311"}
    assert codes(one_rule({"cmp": "eq", "field": "x", "value": [1, 2]})) == {"K311"}
    assert codes(one_rule({"not": cmp("eq", "x", 1)})) == {"K311"}
    assert codes(one_rule(cmp("eq", "x", "a%"))) == set()


@pytest.mark.parametrize("code", [f"K3{n:02d}" for n in range(1, 12)])
def test_codes_are_documented(code: str) -> None:
    assert code in (limits.__doc__ or "")
