"""Microseconds per rule evaluation: reference vs durable_rules in-process vs isolated.

    python bench/rules_bench.py [--cases 300] [--runs 5]

For 10, 100 and 500 generated rules (conditions over ~20 fields of the kind procedures
use: ``category == "quality" and (line_stopped or qty >= 100)``, thresholds, ``is set``)
it evaluates the same ``--cases`` generated cases with each engine, ``--runs`` times,
and prints the median µs per evaluation, the number of C rulesets the adapter made, and
the isolated/in-process overhead. Every answer is checked against the reference.
Figures compare only within one run on one interpreter: the same code runs 1.1–1.5×
faster on an optimised Python build than on one built without optimisations.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.rules.durable_runtime import DurableEvaluator  # noqa: E402  # after the path set-up above
from core.rules.ir import CompiledRule, Cond, RuleSet  # noqa: E402  # after the path set-up above
from core.rules.isolation import IsolatedDurableEvaluator  # noqa: E402  # after the path set-up above
from core.rules.reference import ReferenceEvaluator  # noqa: E402  # after the path set-up above

CHOICES = {
    "event": ["opened", "action", "guard", "timer"],
    "step": ["intake", "verify", "dispatch", "repair", "confirm", "survey", "close"],
    "category": ["quality", "delivery", "service", "electrical", "plumbing", "other"],
    "urgency": ["low", "medium", "high"],
    "channel": ["phone", "web", "email", "visit"],
    "customer_level": ["a", "b", "c"],
    "region": ["north", "south", "east", "west"],
    "product": ["p1", "p2", "p3", "p4", "p5"],
}
NUMBERS = {
    "qty": 500,
    "amount": 10_000,
    "days_open": 60,
    "score": 10,
    "defect_rate": 5,
    "complaints_90d": 12,
    "batch_age": 365,
}
FLAGS = ["line_stopped", "repeat", "vip", "safety"]


def cmp(op: str, field: str, value: Any) -> Cond:
    return {"cmp": op, "field": field, "value": value}


def make_rules(n: int, rnd: random.Random) -> RuleSet:
    rules = []
    for i in range(n):
        parts: list[Cond] = [cmp("eq", "event", rnd.choice(CHOICES["event"]))]
        if rnd.random() < 0.8:
            parts.append(cmp("eq", "category", rnd.choice(CHOICES["category"])))
        if rnd.random() < 0.4:
            f = rnd.choice(["urgency", "channel", "customer_level", "region", "product", "step"])
            parts.append(cmp(rnd.choice(["eq", "eq", "ne"]), f, rnd.choice(CHOICES[f])))
        num = rnd.choice(sorted(NUMBERS))
        threshold = cmp(rnd.choice(["ge", "gt", "lt"]), num, rnd.randrange(NUMBERS[num]))
        if rnd.random() < 0.4:
            parts.append({"or": [cmp("eq", rnd.choice(FLAGS), True), threshold]})
        else:
            parts.append(threshold)
        if rnd.random() < 0.15:
            parts.append({rnd.choice(["set", "unset"]): rnd.choice(sorted(NUMBERS))})
        rules.append(CompiledRule(f"rule_{i}", {"and": parts}))
    return RuleSet.of(f"bench:{n}:{rnd.random()}", rules)


def make_case(rnd: random.Random) -> dict[str, Any]:
    case: dict[str, Any] = {k: rnd.choice(v) for k, v in CHOICES.items() if rnd.random() < 0.9}
    for k, top in NUMBERS.items():
        if rnd.random() < 0.8:
            case[k] = rnd.randrange(top) if k != "defect_rate" else round(rnd.random() * top, 2)
    for k in FLAGS:
        if rnd.random() < 0.7:
            case[k] = rnd.random() < 0.3
    return case


def time_engine(
    ev: Any,
    ruleset: RuleSet,
    cases: list[dict[str, Any]],
    runs: int,
    want: list[frozenset[str]] | None,
) -> tuple[float, int]:
    got = [ev.evaluate(ruleset, c) for c in cases]  # warm up: compile, start the child
    mismatches = 0 if want is None else sum(g != w for g, w in zip(got, want, strict=True))
    per_run = []
    for _ in range(runs):
        start = time.perf_counter()
        for c in cases:
            ev.evaluate(ruleset, c)
        per_run.append((time.perf_counter() - start) / len(cases) * 1e6)
    return statistics.median(per_run), mismatches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    rnd = random.Random(20240601)
    cases = [make_case(rnd) for _ in range(args.cases)]
    ref, inproc, iso = ReferenceEvaluator(), DurableEvaluator(), IsolatedDurableEvaluator()
    print(
        f"python {sys.version.split()[0]}, {args.cases} cases x {args.runs} runs, "
        "median µs per evaluation"
    )
    print(
        f"{'rules':>6} {'C rulesets':>10} {'fired/case':>10} {'reference':>10} "
        f"{'durable-inproc':>14} {'durable (iso)':>14} {'iso/inproc':>10} {'iso - inproc':>12}"
    )
    bad = 0
    try:
        for n in (10, 100, 500):
            ruleset = make_rules(n, rnd)
            want = [ref.evaluate(ruleset, c) for c in cases]
            t_ref, _ = time_engine(ref, ruleset, cases, args.runs, None)
            t_in, bad_in = time_engine(inproc, ruleset, cases, args.runs, want)
            t_iso, bad_iso = time_engine(iso, ruleset, cases, args.runs, want)
            bad += bad_in + bad_iso
            fired = statistics.mean(len(w) for w in want)
            print(
                f"{n:>6} {inproc.compiled_chunks(ruleset):>10} {fired:>10.1f} {t_ref:>10.1f} "
                f"{t_in:>14.1f} {t_iso:>14.1f} {t_iso / t_in:>9.1f}x {t_iso - t_in:>12.1f}"
            )
    finally:
        inproc.close()
        iso.close()
    print("mismatches against the reference:", bad)
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
