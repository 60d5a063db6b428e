"""The audit log's rules for what an administrator may write and how actions are named."""

from __future__ import annotations

import re

import pytest

from socius.domain.audit import ACTION_PATTERN, REASON_MAX, AuditAction, check_reason
from socius.domain.errors import InvalidInput


def test_a_reason_is_trimmed_and_blank_is_none() -> None:
    assert check_reason(None) is None
    assert check_reason("  ") is None
    assert check_reason("  spam wave\nof May ") == "spam wave\nof May"
    assert check_reason("x" * REASON_MAX) == "x" * REASON_MAX


@pytest.mark.parametrize("bad", ["x" * (REASON_MAX + 1), "a\x00b", "bell\x07", "del\x7f"])
def test_a_reason_is_bounded_text(bad: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_reason(bad)
    assert caught.value.code == "invalid_reason"


def test_every_action_name_fits_the_published_pattern() -> None:
    for action in AuditAction:
        assert re.fullmatch(ACTION_PATTERN, action.value), action
    for bad in ("User.disable", "user..disable", ".user", "user.", "a" * 33, "user-disable"):
        assert not re.fullmatch(ACTION_PATTERN, bad), bad
