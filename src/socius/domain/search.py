"""Message search (docs/search.md): what a query may be, and a hit.

A query is plain words: every word must appear in a message for it to match (AND), in
any order, case aside (accents too on SQLite). There is no operator syntax to get wrong: quotes,
``OR``, ``-`` and ``*`` are punctuation, so any text is a valid query.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from socius.domain.conversations import Message
from socius.domain.errors import InvalidInput
from socius.domain.text import has_control_chars

__all__ = [
    "MARK_END",
    "MARK_START",
    "MAX_QUERY_LENGTH",
    "MAX_SEARCH_OFFSET",
    "QUERY_PATTERN",
    "SearchHit",
    "highlighted",
    "query_words",
]

MAX_QUERY_LENGTH = 256
MAX_SEARCH_OFFSET = 1000
"""How deep pages go: past this many results, refine the query."""

# What the database wraps matches in. Message bodies cannot hold control characters
# (domain/text.py), so these never come from a body.
MARK_START = "\x02"
MARK_END = "\x03"

_WORD = re.compile(r"\w+")
QUERY_PATTERN = r"^[^\x00-\x1f\x7f]*\w[^\x00-\x1f\x7f]*$"
"""What ``query_words`` accepts, for the OpenAPI document: a word character somewhere and
no control character; ``MAX_QUERY_LENGTH`` bounds it (so at most 128 words)."""


def query_words(q: str) -> list[str]:
    """The words of ``q``: 422 ``empty_query`` when it has none, ``query_too_long`` past
    ``MAX_QUERY_LENGTH`` characters, ``invalid_characters`` for a control character."""
    if len(q) > MAX_QUERY_LENGTH:
        raise InvalidInput(
            f"a search is at most {MAX_QUERY_LENGTH} characters",
            code="query_too_long",
            details={"field": "q", "max": MAX_QUERY_LENGTH},
        )
    if has_control_chars(q):
        raise InvalidInput(
            "q contains control characters", code="invalid_characters", details={"field": "q"}
        )
    words = _WORD.findall(q)
    if not words:
        raise InvalidInput(
            "a search needs at least one word", code="empty_query", details={"field": "q"}
        )
    return words


def highlighted(marked: str) -> str:
    """A snippet as the database marked it, as HTML-escaped text whose matches are
    wrapped in ``<mark>`` and ``</mark>``, the only markup it holds."""
    escaped = html.escape(marked, quote=True)
    return escaped.replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A message that matches, and the piece of it around the matches (``highlighted``)."""

    message: Message
    snippet: str
