"""The text-search documents: any two or more consecutive characters are findable."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.cases.search import (
    GAP,
    document,
    needle_runs,
    pg_document,
    pg_query,
    searched_text,
    text_changed,
)


def _found(doc: str, q: str) -> bool:
    """What SQLite's index answers: every run's pairs appear one after another."""
    tokens = doc.split()
    for run in needle_runs(q):
        pairs = document(0, run, {}).split()[2:]  # after the company token and the gap
        if not any(tokens[i : i + len(pairs)] == pairs for i in range(len(tokens))):
            return False
    return True


def _found_pg(doc: str, q: str) -> bool:
    """What PostgreSQL answers to :func:`pg_query`: each phrase's tokens one after another."""
    tokens = doc.split()
    query = pg_query(0, needle_runs(q))
    for phrase in query.split(" & ")[1:]:
        grams = phrase.strip("()").split(" <-> ")
        if not any(tokens[i : i + len(grams)] == grams for i in range(len(tokens))):
            return False
    return True


def test_a_document_holds_the_company_and_the_pairs_of_every_text() -> None:
    doc = document(7, "BX-2026-0001", {"name": "张三", "tags": ["漏水"], "n": 3}).split()
    assert doc[0] == "c7"
    # pairs of bx, 2026, 0001; 张三; 漏水 (3 is no text), each run after a gap
    assert len(doc) == 1 + 7 + 1 + 1 + 5
    assert doc.count(GAP) == 5


def test_runs_are_kept_apart() -> None:
    """Without the gap, the pairs 12 24 46 of three words would read as the run 1246."""
    doc = document(1, "N", {"f": "12 24 46"})
    assert _found(doc, "24") and not _found(doc, "1246")
    assert not _found_pg(pg_document(1, "N", {"f": "12 24 46"}), "1246")


def test_phone_tail_chinese_word_and_case_are_found() -> None:
    doc = document(1, "BX-1", {"phone": "13912345678", "symptom": "卫生间水管漏水", "c": "ABC"})
    assert _found(doc, "5678") and _found(doc, "漏水") and _found(doc, "abc")
    assert not _found(doc, "漏电") and not _found(doc, "8765")


@given(st.text(alphabet="甲乙丙丁ab12", min_size=2, max_size=30), st.data())
def test_every_substring_is_found(text: str, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(text) - 2))
    end = data.draw(st.integers(start + 2, len(text)))
    assert _found(document(1, "N", {"f": text}), text[start:end])
    assert _found_pg(pg_document(1, "N", {"f": text}), text[start:end])


@given(st.text(alphabet="甲乙丙丁ab12 ", min_size=2, max_size=30), st.text("甲乙ab12", min_size=2))
def test_nothing_is_found_that_the_text_does_not_hold(text: str, q: str) -> None:
    """The index answers exactly: a run is found only where the text holds it."""
    holds = q.casefold() in text.casefold()
    assert _found(document(1, "N", {"f": text}), q) == holds
    assert _found_pg(pg_document(1, "N", {"f": text}), q) == holds


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(["", "漏水", "张三", "1391234"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("xyz"), inner),
    max_leaves=6,
)


@given(
    st.dictionaries(st.sampled_from("abcdef"), _VALUES, max_size=5),
    st.dictionaries(st.sampled_from("cdefgh"), _VALUES, max_size=4),
    st.sets(st.sampled_from("abcdef")),
)
def test_a_change_that_changes_the_searched_text_rewrites_the_document(
    before: dict[str, object], given_now: dict[str, object], cleared: set[str]
) -> None:
    """A document is kept only when the text it is made of is the same: fields given new
    values (new fields come last, as a change adds them) or removed."""
    after = {k: v for k, v in {**before, **given_now}.items() if k not in cleared}
    if searched_text("N-1", before) != searched_text("N-1", after):
        assert text_changed(before, after)
    assert not text_changed(before, dict(before))
