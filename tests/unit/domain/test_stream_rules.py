"""The event stream's and webhooks' pure rules: type filters, graph event names,
redactions, webhook URLs, secrets, signatures, back-off."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from socius.domain.errors import InvalidInput
from socius.domain.graph import EdgeType
from socius.domain.stream import (
    EVENT_TYPES,
    DomainEvent,
    Redactions,
    check_types,
    graph_event_type,
    type_matches,
)
from socius.domain.webhooks import backoff, check_secret, check_url, new_secret, sign

NOW = datetime(2026, 12, 4, tzinfo=UTC)


def test_type_filters() -> None:
    assert check_types(["message.*, graph.followed", "message.*"]) == [
        "graph.followed",
        "message.*",
    ]
    assert check_types(["future.kind"]) == ["future.kind"]  # no such type: matches nothing
    for bad in ("Message", "a..b", "message.*.x", "MESSAGE.CREATED", "x.**", "a.b.c.d.e"):
        with pytest.raises(InvalidInput):
            check_types([bad])
    assert type_matches("message.created", ["message.*"])
    assert not type_matches("messages.created", ["message.*"])
    assert type_matches("anything.at_all", [])


def test_graph_writes_are_named_by_their_most_telling_edge() -> None:
    assert graph_event_type([EdgeType.FRIEND], [EdgeType.REQUEST_IN]) == "graph.friend_added"
    assert graph_event_type([EdgeType.BLOCKS], [EdgeType.FRIEND]) == "graph.blocked"
    assert graph_event_type([], [EdgeType.FOLLOWS]) == "graph.unfollowed"
    assert graph_event_type([EdgeType.FOLLOW_REQUEST_OUT], []) == "graph.follow_requested"
    names = {graph_event_type([t], []) for t in EdgeType} | {
        graph_event_type([], [t]) for t in EdgeType
    }
    assert names <= EVENT_TYPES


def test_redactions_cover_the_erased() -> None:
    seen = Redactions()
    seen.note(DomainEvent(1, "account.erased", NOW, {"user_id": "7"}))
    seen.note(DomainEvent(2, "message.redacted", NOW, {"message_id": "9"}, message_id=9))
    assert seen.covers(DomainEvent(3, "graph.followed", NOW, {"actor_id": "1", "other_id": "7"}))
    assert seen.covers(DomainEvent(4, "message.created", NOW, {"sender_id": "2"}, message_id=9))
    assert not seen.covers(DomainEvent(5, "message.created", NOW, {"sender_id": "2"}, 10))
    added = {"conversation_id": "3", "user_ids": ["5", "7"]}
    assert seen.covers(DomainEvent(7, "conversation.members_added", NOW, added))
    assert seen.covers(DomainEvent(8, "admin.user_disable", NOW, {"target_id": "7"}))
    assert not seen.covers(DomainEvent(6, "account.erased", NOW, {"user_id": "7"}))


def test_webhook_urls_and_secrets() -> None:
    assert check_url(" https://example.com/hooks?x=1 ") == "https://example.com/hooks?x=1"
    for bad in (
        "ftp://example.com/",
        "https://",
        "https://u:p@example.com/",
        "https://example.com/#f",
        "https://example.com:99999/",
        "example.com/hooks",
        "https://exa mple.com/",
    ):
        with pytest.raises(InvalidInput):
            check_url(bad)
    made = new_secret()
    assert check_secret(made) == made
    with pytest.raises(InvalidInput):
        check_secret("whsec_short")


def test_the_signature_is_the_standard_webhooks_one() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = hmac.new(key, b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330." + body, hashlib.sha256)
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == (
        "v1," + base64.b64encode(expected.digest()).decode()
    )
    # The example of the Standard Webhooks specification.
    assert (
        sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_backoff_doubles_up_to_an_hour() -> None:
    assert [backoff(n) for n in (1, 2, 3)] == [timedelta(seconds=s) for s in (5, 10, 20)]
    assert backoff(40) == timedelta(hours=1)
