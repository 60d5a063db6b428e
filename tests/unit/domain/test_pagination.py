"""Cursors: each list's position round-trips, and nothing else gets through."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from socius.domain.errors import InvalidCursor
from socius.domain.pagination import (
    MAX_CURSOR_LENGTH,
    MAX_INT64,
    ActivityPosition,
    AuditPosition,
    EdgePosition,
    LogPosition,
    MemberPosition,
    NotificationPosition,
    OffsetPosition,
    UserPosition,
    decode_cursor,
    encode_cursor,
)


def forged(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@given(st.integers(0, MAX_INT64))
def test_positions_round_trip(n: int) -> None:
    for position in (LogPosition(s=n), EdgePosition(p=n), OffsetPosition(o=n)):
        assert decode_cursor(encode_cursor(position), type(position)) == position
    if n:
        for position in (
            NotificationPosition(n=n),
            MemberPosition(u=n),
            UserPosition(u=n),
            AuditPosition(a=n),
        ):
            assert decode_cursor(encode_cursor(position), type(position)) == position


def test_cursors_made_before_typed_positions_still_decode() -> None:
    """Clients keep cursors (the socket resumes from one): the old writer's output."""
    assert decode_cursor(forged({"s": 42}), LogPosition) == LogPosition(s=42)
    when = datetime(2026, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
    old = forged({"t": when.isoformat(), "c": 7})
    assert decode_cursor(old, ActivityPosition) == ActivityPosition(c=7, t=when)


def test_no_cursor_is_the_first_page() -> None:
    assert decode_cursor(None, LogPosition) is None
    assert decode_cursor("", LogPosition) is None


def test_times_come_back_in_utc() -> None:
    plus_two = datetime(2026, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    position = decode_cursor(forged({"c": 1, "t": plus_two.isoformat()}), ActivityPosition)
    assert position is not None
    assert position.t == datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    assert position.t.utcoffset() == timedelta(0)


BAD = [
    forged({"s": -1}),
    forged({"s": MAX_INT64 + 1}),
    forged({"s": 2**70}),
    forged({"s": 1.0}),
    forged({"s": "1"}),
    forged({"s": True}),
    forged({"s": None}),
    forged({"s": 1, "x": 1}),
    forged({"n": 1}),
    forged({}),
    forged([1]),
    forged(1),
    "not base64!",
    "e30=",  # padding is not part of the alphabet
    "A" * (MAX_CURSOR_LENGTH + 1),
    "ünïcode",
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    forged({"s": [[[[[[[[1]]]]]]]]}),
]


@pytest.mark.parametrize("cursor", BAD)
def test_anything_else_is_invalid_cursor(cursor: str) -> None:
    with pytest.raises(InvalidCursor) as caught:
        decode_cursor(cursor, LogPosition)
    assert caught.value.code == "invalid_cursor"


@pytest.mark.parametrize(
    "when",
    ["2026-01-01T00:00:00", "0001-01-01T00:00:00+01:00", "2026-02-30T00:00:00Z", 1767225600],
)
def test_a_time_must_be_aware_and_in_range(when: Any) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(forged({"c": 1, "t": when}), ActivityPosition)


@pytest.mark.parametrize("n", [0, -5, MAX_INT64 + 1])
def test_ids_are_positive_64_bit(n: int) -> None:
    for kind, key in (
        (NotificationPosition, "n"),
        (MemberPosition, "u"),
        (UserPosition, "u"),
        (AuditPosition, "a"),
    ):
        with pytest.raises(InvalidCursor):
            decode_cursor(forged({key: n}), kind)
    with pytest.raises(InvalidCursor):
        decode_cursor(forged({"c": n, "t": "2026-01-01T00:00:00Z"}), ActivityPosition)


@given(st.text(max_size=80) | st.binary(max_size=80).map(lambda b: base64.b64encode(b).decode()))
def test_random_text_is_a_cursor_or_invalid_never_a_crash(text: str) -> None:
    for kind in (LogPosition, ActivityPosition, EdgePosition):
        try:
            position = decode_cursor(text, kind)
        except InvalidCursor:
            continue
        assert position is None or isinstance(position, msgspec.Struct)
