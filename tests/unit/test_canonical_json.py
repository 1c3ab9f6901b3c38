"""The journal's canonical text never changes: every entry ever coded must verify.

The canonical form (sorted keys, no spaces, a whole number within 2^53 as an integer,
larger numbers as the nearest float, any other value as its text) is checked against a
plain, slow statement of those rules on random values — numbers at the edges, tuples,
non-text keys, nested containers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from core.cases.journal import SAFE_INT, canonical_json


def _plainly(value: Any) -> Any:
    """The canonical form's rules, one isinstance after another."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if -SAFE_INT <= value <= SAFE_INT:
            return value
        try:
            return float(value)
        except OverflowError:
            return str(value)
    if isinstance(value, float):
        return int(value) if value.is_integer() and -SAFE_INT <= value <= SAFE_INT else value
    if isinstance(value, Mapping):
        return {str(k): _plainly(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plainly(v) for v in value]
    return str(value)


def _reference(value: Any) -> str:
    return json.dumps(_plainly(value), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


_NUMBERS = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([2**53, 2**53 + 1, -(2**53) - 1, 10**400, 0])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([-0.0, 3.0, 1e16, 1e308, 2.0**53, 0.1])
)
_LEAVES = st.none() | st.booleans() | st.text(max_size=6) | _NUMBERS
_KEYS = st.text(max_size=3) | st.integers(-3, 3) | st.booleans()
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(_KEYS, inner, max_size=4)
    ),
    max_leaves=12,
)


@given(_VALUES)
def test_the_canonical_text_follows_its_rules(value: Any) -> None:
    assert canonical_json(value) == _reference(value)


def test_numbers_have_one_form() -> None:
    assert canonical_json({"b": [3.0, -0.0, 2**60], "a": True}) == (
        '{"a":true,"b":[3,0,1.152921504606847e+18]}'
    )
    assert canonical_json(10**400) == '"' + str(10**400) + '"'
    assert math.isclose(json.loads(canonical_json(2**60)), 2**60)
