"""The published patterns: Python (the server) and JSON Schema (the OpenAPI document, read
here by jsonschema-rs) accept exactly the same strings, and so do the domain's checks."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socius.domain.conversations import (
    BODY_MAX,
    BODY_PATTERN,
    CLIENT_MSG_ID_PATTERN,
    EMOJI_PATTERN,
    TITLE_MAX,
    TITLE_PATTERN,
    check_body,
    check_client_msg_id,
    check_emoji,
    check_title,
)
from socius.domain.errors import InvalidInput
from socius.domain.ids import ID_PATTERN
from socius.domain.text import WHITESPACE
from socius.domain.users import (
    AVATAR_URL_MAX,
    AVATAR_URL_PATTERN,
    BIO_MAX,
    BIO_PATTERN,
    DISPLAY_NAME_MAX,
    DISPLAY_NAME_PATTERN,
    EMAIL_MAX,
    EMAIL_PATTERN,
    USERNAME_PATTERN,
    check_avatar_url,
    check_bio,
    check_display_name,
    check_email,
    check_username,
)


def test_whitespace_is_what_python_strips() -> None:
    """Every code point but the surrogates (which JSON text cannot carry alone)."""
    schema = jsonschema_rs.validator_for({"type": "string", "pattern": f"^[{WHITESPACE}]$"})
    python = re.compile(f"[{WHITESPACE}]")
    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code <= 0xDFFF:
            continue
        char = chr(code)
        if char.isspace() or code < 0x3100:
            assert schema.is_valid(char) == char.isspace(), hex(code)
        assert bool(python.fullmatch(char)) == char.isspace(), hex(code)


# pattern, maxLength (None: the pattern bounds it), the domain's check
RULES: dict[str, tuple[str, int | None, Callable[[str], object]]] = {
    "username": (USERNAME_PATTERN, None, check_username),
    "email": (EMAIL_PATTERN, EMAIL_MAX, check_email),
    "display_name": (DISPLAY_NAME_PATTERN, DISPLAY_NAME_MAX, check_display_name),
    "bio": (BIO_PATTERN, BIO_MAX, check_bio),
    "avatar_url": (AVATAR_URL_PATTERN, AVATAR_URL_MAX, check_avatar_url),
    "title": (TITLE_PATTERN, TITLE_MAX, check_title),
    "body": (BODY_PATTERN, BODY_MAX, check_body),
    "client_msg_id": (CLIENT_MSG_ID_PATTERN, None, check_client_msg_id),
    "emoji": (EMOJI_PATTERN, None, check_emoji),
}
# Characters where regex dialects and Python's notion of space tend to differ.
_tricky = st.sampled_from(
    list("\t\n\x0b\x0c\r\x1c\x1f \x85\xa0\u1680\u2007\u2028\u2029\u202f\u205f\u3000\ufeff")
    + list("\x00\x01\x7f\x9f@./?#%_-:aZ9é😀İK")
)
TEXT = st.text(st.one_of(_tricky, st.characters(exclude_categories=["Cs"])), max_size=40)


def accepted_by_domain(check: Callable[[str], object], value: str) -> bool:
    try:
        check(value)
    except InvalidInput:
        return False
    return True


@pytest.mark.parametrize("name", list(RULES))
@settings(max_examples=300, deadline=None)
@given(value=TEXT)
def test_python_json_schema_and_the_domain_agree(name: str, value: str) -> None:
    pattern, max_length, check = RULES[name]
    schema: dict[str, object] = {"type": "string", "pattern": pattern}
    if max_length is not None:
        schema["maxLength"] = max_length
    by_schema = jsonschema_rs.validator_for(schema).is_valid(value)
    assert accepted_by_domain(check, value) == by_schema, (name, value)


@pytest.mark.parametrize("name", list(RULES))
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_every_string_the_pattern_makes_is_accepted(name: str, data: st.DataObject) -> None:
    pattern, max_length, check = RULES[name]
    value = data.draw(st.from_regex(pattern, fullmatch=True))
    if max_length is not None and len(value) > max_length:
        return
    assert accepted_by_domain(check, value), (name, value)


def test_ids() -> None:
    schema = jsonschema_rs.validator_for({"type": "string", "pattern": ID_PATTERN})
    assert schema.is_valid("1")
    assert schema.is_valid("9" * 19)
    for bad in ("", "9" * 20, "1\n", " 1", "-1", "1.5", "١٢٣"):
        assert not schema.is_valid(bad), bad
