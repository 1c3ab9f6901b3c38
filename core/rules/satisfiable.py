"""Whether a condition can ever hold: the lint behind "a when: that can never be true".

A condition compares facts with constants, so whether it can hold depends only on a few
values per fact: for a fact with a fixed set of values (a choice field, a boolean, the
``step`` fact) those values; for any other fact the constants the condition compares it
with, a value between each two of them and one beyond each end; and, for every fact, "no
value". :func:`can_hold` tries every combination of those (with the reference
evaluator's semantics) and gives up — answers "yes" — when there would be too many.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from core.rules.ir import Cond, Scalar, leaves
from core.rules.reference import holds

#: combinations tried at most for one condition; beyond, it is assumed to be satisfiable
MAX_COMBINATIONS = 20_000
#: combinations tried at most for one pack: the lint must not make validating a pack of
#: thousands of generated rules slow
PACK_BUDGET = 200_000

_UNSET = object()


def can_hold(
    cond: Cond, domains: Mapping[str, Sequence[Scalar]], limit: int = MAX_COMBINATIONS
) -> bool:
    """False only when no facts make ``cond`` hold; ``domains`` gives the possible values
    of facts that have a fixed set of them (other facts: any value). More than ``limit``
    combinations to try: True (not decided)."""
    options = _options(cond, domains)
    total = 1
    for values in options.values():
        total *= len(values)
        if total > limit:
            return True
    names = list(options)
    for combo in itertools.product(*(options[n] for n in names)):
        facts = {n: v for n, v in zip(names, combo, strict=True) if v is not _UNSET}
        if holds(cond, facts):  # type: ignore[arg-type]  # the scalars of the condition
            return True
    return False


def combinations(cond: Cond, domains: Mapping[str, Sequence[Scalar]]) -> int:
    """How many combinations :func:`can_hold` would try (the cost of deciding)."""
    total = 1
    for values in _options(cond, domains).values():
        total *= len(values)
    return total


def _options(cond: Cond, domains: Mapping[str, Sequence[Scalar]]) -> dict[str, list[object]]:
    candidates: dict[str, list[object]] = {}
    for leaf in leaves(cond):
        name = leaf.get("field") or leaf.get("set") or leaf.get("unset")
        if name is None:
            continue
        values = candidates.setdefault(name, [_UNSET])
        if "cmp" in leaf and name not in domains:
            values.append(leaf["value"])
    options: dict[str, list[object]] = {}
    for name, found in candidates.items():
        if name in domains:
            options[name] = [_UNSET, *domains[name]]
        else:
            options[name] = _around(found)
    return options


def _around(found: list[object]) -> list[object]:
    """The values worth trying for a fact compared with the constants ``found``."""
    numbers = sorted({v for v in found if isinstance(v, int | float) and not isinstance(v, bool)})
    texts = sorted({v for v in found if isinstance(v, str)})
    out: list[object] = [_UNSET, True, False]
    if numbers:
        out += [numbers[0] - 1, numbers[-1] + 1, *numbers]
        out += [(a + b) / 2 for a, b in itertools.pairwise(numbers)]
    out += texts
    out.append("".join(texts) + "\uffff" if texts else "")  # a text none of them equals
    if texts:
        out.append("")  # below every non-empty text
    return out
