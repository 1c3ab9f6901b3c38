"""The text-search documents: any two or more consecutive characters are findable."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.cases.search import document, needle_runs


def _found(doc: str, q: str) -> bool:
    """What the index answers: every run's pairs appear one after another in the document."""
    tokens = doc.split()
    for run in needle_runs(q):
        pairs = document(0, run, {}).split()[1:]
        if not any(tokens[i : i + len(pairs)] == pairs for i in range(len(tokens))):
            return False
    return True


def test_a_document_holds_the_company_and_the_pairs_of_every_text() -> None:
    doc = document(7, "BX-2026-0001", {"name": "张三", "tags": ["漏水"], "n": 3}).split()
    assert doc[0] == "c7"
    assert len(doc) == 1 + 7 + 1 + 1  # pairs of bx, 2026, 0001; 张三; 漏水 (3 is no text)


def test_phone_tail_chinese_word_and_case_are_found() -> None:
    doc = document(1, "BX-1", {"phone": "13912345678", "symptom": "卫生间水管漏水", "c": "ABC"})
    assert _found(doc, "5678") and _found(doc, "漏水") and _found(doc, "abc")
    assert not _found(doc, "漏电") and not _found(doc, "8765")


@given(st.text(alphabet="甲乙丙丁ab12", min_size=2, max_size=30), st.data())
def test_every_substring_is_found(text: str, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(text) - 2))
    end = data.draw(st.integers(start + 2, len(text)))
    assert _found(document(1, "N", {"f": text}), text[start:end])
