"""The text-search documents: any two or more consecutive characters are findable."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.cases.search import (
    document,
    needle_runs,
    pg_query,
    searched_text,
    sqlite_match,
    text_changed,
)


def _holds(tokens: list[str], alternatives: list[list[str]]) -> bool:
    """Whether one of the phrases stands in ``tokens``: its tokens one after another, a
    token ending in ``*`` standing for any token it starts."""

    def same(token: str, wanted: str) -> bool:
        return token.startswith(wanted[:-1]) if wanted.endswith("*") else token == wanted

    return any(
        all(same(tokens[i + k], w) for k, w in enumerate(phrase))
        for phrase in alternatives
        for i in range(len(tokens) - len(phrase) + 1)
    )


def _found(doc: str, q: str) -> bool:
    """What SQLite's index answers to :func:`sqlite_match`: each part after the company's
    token is a phrase ("t1 t2") or alternatives ((t* OR g))."""
    tokens = doc.split()
    company, *parts = sqlite_match(0, needle_runs(q)).split(" AND ")
    assert company == "c0"
    return all(
        _holds(tokens, [p.strip('"').split()])
        if p.startswith('"')
        else _holds(tokens, [[a] for a in p.strip("()").split(" OR ")])
        for p in parts
    )


def _found_pg(doc: str, q: str) -> bool:
    """What PostgreSQL answers to :func:`pg_query`: each part a phrase (t1 <-> t2) or
    alternatives (t:* | g)."""
    tokens = doc.split()
    company, *parts = pg_query(0, needle_runs(q)).split(" & ")
    assert company == "c0"
    return all(
        _holds(tokens, [p.strip("()").split(" <-> ")])
        if "<->" in p or "|" not in p
        else _holds(tokens, [[a.replace(":*", "*")] for a in p.strip("()").split(" | ")])
        for p in parts
    )


def test_a_document_holds_the_company_and_the_triples_and_last_pair_of_every_run() -> None:
    doc = document(7, "BX-2026-0001", {"name": "张三丰", "tags": ["漏水"], "n": 3}).split()
    assert doc[0] == "c7"
    # bx: its pair; 2026 and 0001: two triples and the last pair each; 张三丰: its
    # triple and 三丰; 漏水: its pair (3 is no text)
    assert len(doc) == 1 + 1 + 3 + 3 + 2 + 1
    assert doc[-3:] == [
        "t" + "张三丰".encode().hex(),
        "g" + "三丰".encode().hex(),
        "g" + "漏水".encode().hex(),
    ]


def test_runs_are_kept_apart() -> None:
    """Three runs side by side are not one run: neither 1246 in "12 24 46" nor 12345 in
    "123 234 345" (whose triples stand next to each other but for the last pairs)."""
    for text, there, q in (("12 24 46", "24", "1246"), ("123 234 345", "234", "12345")):
        doc = document(1, "N", {"f": text})
        assert _found(doc, there) and _found_pg(doc, there)
        assert not _found(doc, q) and not _found_pg(doc, q)


def test_phone_tail_chinese_word_and_case_are_found() -> None:
    doc = document(1, "BX-1", {"phone": "13912345678", "symptom": "卫生间水管漏水", "c": "ABC"})
    for q in ("5678", "漏水", "水管", "abc", "ab", "bc", "78", "13"):
        assert _found(doc, q) and _found_pg(doc, q), q
    for q in ("漏电", "8765", "ca", "水卫"):
        assert not _found(doc, q) and not _found_pg(doc, q), q


@given(st.text(alphabet="甲乙丙丁ab12", min_size=2, max_size=30), st.data())
def test_every_substring_is_found(text: str, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(text) - 2))
    end = data.draw(st.integers(start + 2, len(text)))
    assert _found(document(1, "N", {"f": text}), text[start:end])
    assert _found_pg(document(1, "N", {"f": text}), text[start:end])


@given(st.text(alphabet="甲乙丙丁ab12 ", min_size=2, max_size=30), st.text("甲乙ab12", min_size=2))
def test_nothing_is_found_that_the_text_does_not_hold(text: str, q: str) -> None:
    """The index answers exactly: a run is found only where the text holds it."""
    holds = q.casefold() in text.casefold()
    assert _found(document(1, "N", {"f": text}), q) == holds
    assert _found_pg(document(1, "N", {"f": text}), q) == holds


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
