"""domain/search.py: what a query may be, and how a marked snippet becomes safe HTML."""

from __future__ import annotations

import pytest

from socius.domain.errors import InvalidInput
from socius.domain.search import MARK_END, MARK_START, highlighted, query_words


def test_words_are_runs_of_letters_digits_and_underscores() -> None:
    assert query_words('"launch" OR -plan* (v2_final) café:') == [
        "launch",
        "OR",
        "plan",
        "v2_final",
        "café",
    ]


@pytest.mark.parametrize(
    ("q", "code"),
    [
        ("", "empty_query"),
        ("  ?! ... ", "empty_query"),
        ("x" * 257, "query_too_long"),
        ("a\x00b", "invalid_characters"),
    ],
)
def test_bad_queries_are_refused(q: str, code: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        query_words(q)
    assert refused.value.code == code


def test_a_snippet_is_escaped_and_only_marks_are_markup() -> None:
    marked = f"<img src=x onerror=\"alert(1)\"> & {MARK_START}fox{MARK_END} 'q'"
    assert highlighted(marked) == (
        "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; <mark>fox</mark> &#x27;q&#x27;"
    )
