"""Microseconds per rule evaluation: reference vs durable_rules in-process vs isolated.

    python bench/rules_bench.py [--cases 300] [--runs 5]

For 10, 100 and 500 generated rules (conditions over ~20 fields of the kind procedures
use: ``category == "quality" and (line_stopped or qty >= 100)``, thresholds, ``is set``)
it evaluates the same ``--cases`` generated cases with each engine, ``--runs`` times,
and prints the median µs per evaluation, the number of C rulesets the adapter made, and
the isolated/in-process overhead. Every answer is checked against the reference.
Figures compare only within one run on one interpreter: the same code runs 1.1–1.5×
faster on an optimised Python build than on one built without optimisations.

A second table shows what the procedure language's derived values cost per evaluation:
for the test packs ``derived-values`` (date and working-day arithmetic, money, two fields
compared), ``four-eyes`` (who acts) and ``list-fields`` (any/all/count/sum over 5 and 50
items), the µs to build a case's facts with and without the derived ones, and the
evaluation itself (reference and durable_rules in-process) on those facts.
"""

from __future__ import annotations

import argparse
import datetime as dt
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
from core.runtime.plugins import installed  # noqa: E402  # after the path set-up above
from core.spec.loading import effect_registry, load_pack  # noqa: E402  # after the path set-up above
from core.spec.procedures import compile_procedure  # noqa: E402  # after the path set-up above
from core.time.calendars import WorkingCalendar  # noqa: E402  # after the path set-up above

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
    bad += derived_values(args.cases, args.runs)
    if bad:
        sys.exit(1)


class _Actor:
    username = "wang"
    roles = frozenset({"quality_manager", "responsible"})
    departments = frozenset({"quality"})


def _derived_cases(key: str, rnd: random.Random, n: int, items: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for _ in range(n):
        if key == "derived-values":
            out.append(
                {
                    "shipped_on": f"2026-10-{rnd.randrange(1, 29):02d}",
                    "found_on": f"2026-11-{rnd.randrange(1, 29):02d}",
                    "replied_on": f"2026-11-{rnd.randrange(1, 29):02d}",
                    "reported_at": f"2026-11-0{rnd.randrange(1, 7)}T09:00:00+00:00",
                    "qty": rnd.randrange(100),
                    "unit_price": rnd.randrange(1, 50) / 2,
                    "approval_limit": rnd.randrange(2000),
                }
            )
        elif key == "four-eyes":
            out.append({"tracker": rnd.choice(["wang", "zhao"]), "summary": "x"})
        else:
            defects = [
                {
                    "id": i,
                    "room": "kitchen",
                    "part": "wall",
                    "status": rnd.choice(["open", "fixed"]),
                    "cost": rnd.randrange(500),
                }
                for i in range(1, items + 1)
            ]
            out.append({"unit": "1-101", "defects": defects})
    return out


def derived_values(ncases: int, runs: int) -> int:
    """The cost of derived values per evaluation; returns the mismatches found."""
    ext = installed()
    cal = WorkingCalendar(None, "Asia/Shanghai")
    now = dt.datetime(2026, 11, 30, 2, tzinfo=dt.UTC)
    rnd = random.Random(7)
    ref, inproc = ReferenceEvaluator(), DurableEvaluator()
    print()
    print("derived values: median µs per case (facts built as the commit pipeline builds them)")
    print(
        f"{'pack':>22} {'derived':>7} {'facts, plain':>12} {'facts+derived':>13} "
        f"{'derived cost':>12} {'reference':>10} {'durable-inproc':>14}"
    )
    bad = 0
    try:
        for key, items in (
            ("derived-values", 0),
            ("four-eyes", 0),
            ("list-fields", 5),
            ("list-fields", 50),
        ):
            lp, _ = load_pack(ROOT / "tests" / "packs" / key, extensions=ext)
            assert lp is not None
            proc = compile_procedure(
                lp.pack, {}, company="bench", effects=effect_registry(ext), raw=lp.raw
            )
            cases = _derived_cases(key, rnd, ncases, items)
            kw = {"event": "action", "step": sorted(lp.pack.steps)[0], "action": "fill"}

            def plain(c: dict[str, Any], p: Any = proc, kw: dict[str, Any] = kw) -> Any:
                return p.facts(c, **kw)

            def full(c: dict[str, Any], p: Any = proc, kw: dict[str, Any] = kw) -> Any:
                return p.facts(c, **kw, now=now, calendar=cal, actor=_Actor())

            saved = proc.derived
            proc.derived = type(saved)()  # the same pack without its derived values
            t_plain = _median_us(plain, cases, runs)
            proc.derived = saved
            proc.__dict__.pop("item_readers", None)
            t_full = _median_us(full, cases, runs)
            facts = [full(c) for c in cases]
            want = [ref.evaluate(proc.ruleset, f) for f in facts]
            got = [inproc.evaluate(proc.ruleset, f) for f in facts]
            bad += sum(g != w for g, w in zip(got, want, strict=True))
            rs = proc.ruleset
            t_ref = _median_us(lambda f, rs=rs: ref.evaluate(rs, f), facts, runs)
            t_dur = _median_us(lambda f, rs=rs: inproc.evaluate(rs, f), facts, runs)
            name = key + (f" ({items} items)" if items else "")
            print(
                f"{name:>22} {len(proc.derived.exprs):>7} {t_plain:>12.1f} {t_full:>13.1f} "
                f"{t_full - t_plain:>12.1f} {t_ref:>10.1f} {t_dur:>14.1f}"
            )
    finally:
        inproc.close()
    print("mismatches against the reference:", bad)
    return bad


def _median_us(fn: Any, items: list[Any], runs: int) -> float:
    per_run = []
    for _ in range(runs):
        start = time.perf_counter()
        for it in items:
            fn(it)
        per_run.append((time.perf_counter() - start) / len(items) * 1e6)
    return statistics.median(per_run)


if __name__ == "__main__":
    main()
