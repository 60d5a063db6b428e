"""The conversation rules that need no database: keys, limits and input checks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from socius.domain.conversations import (
    BODY_MAX,
    MAX_GROUP_MEMBERS,
    MAX_TTL_SECONDS,
    Conversation,
    ConversationKind,
    Member,
    Message,
    Role,
    check_body,
    check_client_msg_id,
    check_emoji,
    check_manager,
    check_title,
    check_ttl,
    direct_key,
    not_found,
)
from socius.domain.errors import Forbidden, InvalidInput, NotFound
from socius.services.messaging import ConversationView

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def code_of(exc: pytest.ExceptionInfo[Exception]) -> str:
    return str(getattr(exc.value, "code", ""))


def test_direct_key_is_the_same_from_either_side() -> None:
    assert direct_key(5, 9) == direct_key(9, 5) == "5:9"
    assert direct_key(10, 9) == "9:10"  # numeric, not lexical, order
    assert direct_key(1, 2) != direct_key(1, 3)


def test_limits() -> None:
    assert BODY_MAX == 4000
    assert MAX_GROUP_MEMBERS == 1000


@pytest.mark.parametrize("body", ["x", "a" * BODY_MAX, "two\nlines", "tab\tinside", "  pad  "])
def test_body_accepts(body: str) -> None:
    assert check_body(body) == body


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("", "empty_body"),
        ("   \n\t ", "empty_body"),
        ("a" * (BODY_MAX + 1), "body_too_long"),
        ("bell\x07", "invalid_characters"),
        ("nul\x00", "invalid_characters"),
    ],
)
def test_body_rejects(body: str, code: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        check_body(body)
    assert code_of(exc) == code


def test_a_body_may_be_empty_only_with_attachments() -> None:
    assert check_body("", attachments=True) == ""
    for body in (" ", "\n\t"):
        with pytest.raises(InvalidInput) as exc:
            check_body(body, attachments=True)
        assert code_of(exc) == "empty_body"


@pytest.mark.parametrize(
    "value", ["a", "A-b_c.d:e", "0" * 64, "550e8400-e29b-41d4-a716-446655440000"]
)
def test_client_msg_id_accepts(value: str) -> None:
    assert check_client_msg_id(value) == value


@pytest.mark.parametrize("value", ["", "0" * 65, "has space", "slash/", "é", "semi;colon", "\n"])
def test_client_msg_id_rejects(value: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        check_client_msg_id(value)
    assert code_of(exc) == "invalid_client_msg_id"


def test_title() -> None:
    assert check_title("  Team  ") == "Team"
    assert check_title("t" * 100) == "t" * 100
    for bad in ("", "   ", "t" * 101):
        with pytest.raises(InvalidInput) as exc:
            check_title(bad)
        assert code_of(exc) == "invalid_title"
    with pytest.raises(InvalidInput):
        check_title("bad\x01title")


def test_ttl() -> None:
    assert check_ttl(None) is None
    assert check_ttl(0) is None
    assert check_ttl(1) == 1
    assert check_ttl(MAX_TTL_SECONDS) == MAX_TTL_SECONDS
    for bad in (-1, MAX_TTL_SECONDS + 1):
        with pytest.raises(InvalidInput) as exc:
            check_ttl(bad)
        assert code_of(exc) == "invalid_ttl"


@pytest.mark.parametrize("emoji", ["👍", "❤️", "+1", "party_parrot", "👨‍👩‍👧"])
def test_emoji_accepts(emoji: str) -> None:
    assert check_emoji(emoji) == emoji


@pytest.mark.parametrize("emoji", ["", "a b", "x/y", "q?", "#", "%", "x" * 17, "\x00"])
def test_emoji_rejects(emoji: str) -> None:
    with pytest.raises(InvalidInput):
        check_emoji(emoji)


def member(role: Role, read: int = 0) -> Member:
    return Member(1, 2, role, NOW, read)


def test_roles_that_manage() -> None:
    assert Role.OWNER.manages
    assert Role.ADMIN.manages
    assert not Role.MEMBER.manages
    check_manager(member(Role.OWNER))
    check_manager(member(Role.ADMIN))
    with pytest.raises(Forbidden) as exc:
        check_manager(member(Role.MEMBER))
    assert code_of(exc) == "not_an_admin"


def test_message_deleted_follows_deleted_at() -> None:
    m = Message(1, 2, 3, 4, "c", "body", None, NOW)
    assert not m.deleted
    assert m.reactions == {}
    tomb = Message(1, 2, 3, None, "c", None, None, NOW, deleted_at=NOW)
    assert tomb.deleted


def test_not_found_names_what() -> None:
    assert isinstance(not_found(), NotFound)
    assert not_found().code == "conversation_not_found"
    assert not_found("message").code == "message_not_found"


@pytest.mark.parametrize(
    ("last", "read", "unread"), [(0, 0, 0), (10, 3, 7), (10, 10, 0), (3, 5, 0)]
)
def test_unread_count_is_last_seq_minus_read_pointer(last: int, read: int, unread: int) -> None:
    c = Conversation(1, ConversationKind.GROUP, "t", 2, None, last, 2, NOW, NOW)
    assert ConversationView(c, member(Role.MEMBER, read)).unread_count == unread
