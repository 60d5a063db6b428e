"""Message search (GET /v1/search/messages), through the REST API and the SDK, on both
stacks: ranking, snippets, pages, who may find what, and what never matches.

Every send here goes through the group commit (storage/sends.py): what it inserts is
found, so the index follows that path without a line of it knowing.
The app runs on a clock the test moves, so a message's expiry needs no waiting.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from clock import Clock
from conftest import PASSWORD, Account, App, make_app
from socius.client import ApiError, SearchHit
from socius.domain.pagination import LogPosition, OffsetPosition, encode_cursor
from socius.settings import Settings

CONVERSATIONS = "/v1/conversations"
SEARCH = "/v1/search/messages"


@pytest.fixture
def app(make_settings: Callable[..., Settings], clock: Clock) -> App:
    return make_app(make_settings(), clock=clock)


def error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def make_group(owner: Account, *members: Account) -> str:
    return owner.client.create_group("team", [m.id for m in members]).id


def send(a: Account, cid: str, body: str) -> str:
    return a.client.send_message(cid, body, client_msg_id=uuid.uuid4().hex).id


def search(a: Account, q: str, **params: Any) -> list[SearchHit]:
    """Every hit, page by page."""
    return list(a.client.iter_search_messages(q, **params))


def found(a: Account, q: str, **params: Any) -> list[str]:
    return [hit.message.body or "" for hit in search(a, q, **params)]


def raw_search(a: Account, **params: Any) -> httpx.Response:
    return a.client.raw("GET", SEARCH, params=params)


def run(http: Any, fn: Callable[[], Any]) -> Any:
    return http.blocking_portal.call(fn)


def test_best_match_first_with_highlighted_escaped_snippets(
    register: Callable[..., Account],
) -> None:
    a, b = register(), register()
    cid = make_group(a, b)
    send(a, cid, "the quick brown fox jumps over the lazy dog")
    send(b, cid, "fox fox fox, all day foxes and a fox")
    send(a, cid, "nothing to see here")
    send(b, cid, 'a <script>alert("x")</script> & a Fox')

    hits = search(b, "fox")
    bodies = [h.message.body for h in hits]
    assert len(bodies) == 3
    assert "nothing to see here" not in bodies
    # The message saying "fox" most, first.
    assert bodies[0] == "fox fox fox, all day foxes and a fox"
    assert all(h.message.conversation_id == cid for h in hits)
    assert hits[0].message.sender_id == b.id
    # Matches marked, everything else escaped: the only markup is <mark>.
    snippet = next(h.snippet for h in hits if "script" in (h.message.body or ""))
    assert "<mark>Fox</mark>" in snippet
    assert "<script>" not in snippet  # escaped (SQLite) or left out as a tag (PostgreSQL)
    assert "&amp;" in snippet
    assert "&quot;x&quot;" in snippet
    assert snippet.replace("<mark>", "").replace("</mark>", "").count("<") == 0
    assert "<mark>quick</mark>" in search(a, "QUICK")[0].snippet

    # Every word must be there, in any order, whatever the case.
    assert found(a, "DOG quick") == ["the quick brown fox jumps over the lazy dog"]
    assert found(a, "fox nothing") == []
    assert found(a, "elephant") == []


def test_operators_are_plain_words(register: Callable[..., Account]) -> None:
    """Quotes, OR, NEAR, `*`, `-`, `:` and parentheses are no syntax: never a 500."""
    a, b = register(), register()
    cid = make_group(a, b)
    send(a, cid, "meet at noon")
    for q in ['"meet', "meet*", "-meet", "(meet", "meet:", "meet^", "meet'"]:
        assert found(a, q) == ["meet at noon"], q
    for q in ["NEAR(meet noon", "meet OR nothing", 'meet AND "', "meet & | !"]:
        response = raw_search(a, q=q)
        assert response.status_code == 200, (q, response.text)


def test_pages_follow_the_cursor_to_the_end(register: Callable[..., Account]) -> None:
    a, b = register(), register()
    cid = make_group(a, b)
    sent = {send(a, cid, f"report number {i} is ready") for i in range(7)}
    send(a, cid, "unrelated")

    first = a.client.search_messages("report ready", limit=3)
    assert len(first.items) == 3
    assert first.next_cursor is not None
    second = a.client.search_messages("report ready", limit=3, cursor=first.next_cursor)
    assert len(second.items) == 3
    assert second.next_cursor is not None
    third = a.client.search_messages("report ready", limit=3, cursor=second.next_cursor)
    assert len(third.items) == 1
    assert third.next_cursor is None
    ids = [h.message.id for page in (first, second, third) for h in page.items]
    assert len(ids) == len(set(ids))
    assert set(ids) == sent
    assert {h.message.id for h in search(a, "report", limit=2)} == sent

    # Cursors are opaque: a forged, garbled or other list's cursor is a 400.
    for bad in ["!!!", "e30", encode_cursor(LogPosition(s=3)), "A" * 600]:
        response = raw_search(a, q="report", cursor=bad)
        assert error(response) == (400, "invalid_cursor"), bad
    # One made for this list (docs: a client may craft one) is read.
    crafted = raw_search(a, q="report", cursor=encode_cursor(OffsetPosition(o=6)))
    assert len(crafted.json()["items"]) == 1
    deep = raw_search(a, q="report", cursor=encode_cursor(OffsetPosition(o=10**6)))
    assert deep.json() == {"items": [], "next_cursor": None}


def test_only_the_callers_own_conversations(register: Callable[..., Account]) -> None:
    a, b, outsider, leaver = register(), register(), register(), register()
    group = make_group(a, b, leaver)
    dm = a.client.open_direct(b.id).id
    other = make_group(outsider)  # the outsider's own, with the same words
    send(a, group, "secret plans for the group")
    send(b, dm, "secret plans between two")
    send(outsider, other, "secret plans of the outsider")

    assert sorted(found(a, "secret plans")) == [
        "secret plans between two",
        "secret plans for the group",
    ]
    assert found(leaver, "secret plans") == ["secret plans for the group"]
    assert found(outsider, "secret plans") == ["secret plans of the outsider"]
    # One conversation alone.
    assert found(a, "secret plans", conversation_id=dm) == ["secret plans between two"]
    # Not a member: 404, as every conversation route answers.
    for cid in (group, dm, "123456789", "not-an-id", "0"):
        response = raw_search(outsider, q="secret", conversation_id=cid)
        assert error(response) == (404, "conversation_not_found"), cid

    # A member removed finds nothing more there, from then on.
    removed = a.client.raw("DELETE", f"{CONVERSATIONS}/{group}/members/{leaver.id}")
    assert removed.status_code == 204
    assert found(leaver, "secret plans") == []
    assert error(raw_search(leaver, q="secret", conversation_id=group)) == (
        404,
        "conversation_not_found",
    )
    # Messages sent after someone joins are found by them; so is the history before
    # (members read a conversation's whole history, docs/search.md).
    late = register()
    added = a.client.raw("POST", f"{CONVERSATIONS}/{group}/members", json={"user_ids": [late.id]})
    assert added.status_code in (200, 201), added.text
    assert found(late, "secret plans") == ["secret plans for the group"]


def test_across_a_block_search_shows_what_the_message_list_shows(
    register: Callable[..., Account],
) -> None:
    """A block turns the direct conversation read-only, not hidden (docs/architecture.md,
    "Blocks and mutes"): search finds there what the list shows, no more, no less."""
    a, b, c = register(), register(), register()
    dm = a.client.open_direct(b.id).id
    group = make_group(a, b, c)
    send(b, dm, "lunch tomorrow in the dm")
    send(b, group, "lunch tomorrow in the group")
    a.client.block(b.id)

    for who in (a, b):
        listed = {
            m.body
            for cid in (dm, group)
            for m in who.client.messages(cid)
            if m.body and "lunch" in m.body
        }
        assert set(found(who, "lunch tomorrow")) == listed
        assert listed == {"lunch tomorrow in the dm", "lunch tomorrow in the group"}
    # Nothing leaks to someone outside the direct conversation.
    assert found(c, "lunch tomorrow") == ["lunch tomorrow in the group"]


def test_deleted_and_edited_away_text_never_matches(register: Callable[..., Account]) -> None:
    a, b = register(), register()
    cid = make_group(a, b)
    gone = send(a, cid, "the launch code is swordfish")
    edited = send(a, cid, "meet me at the old mill")
    send(b, cid, "swordfish for dinner")
    assert len(found(b, "swordfish")) == 2

    a.client.raw("DELETE", f"{CONVERSATIONS}/{cid}/messages/{gone}").raise_for_status()
    a.client.raw(
        "PATCH", f"{CONVERSATIONS}/{cid}/messages/{edited}", json={"body": "meet me at the pier"}
    ).raise_for_status()

    for who in (a, b):
        assert found(who, "swordfish") == ["swordfish for dinner"]
        assert found(who, "launch code") == []
        assert found(who, "old mill") == []
        assert found(who, "pier") == ["meet me at the pier"]


def test_expired_messages_never_match(
    app: App, http: Any, clock: Clock, register: Callable[..., Account]
) -> None:
    a, b = register(), register()
    cid = make_group(a, b)
    send(a, cid, "kept forever: the password hint")
    a.client.raw(
        "PATCH", f"{CONVERSATIONS}/{cid}", json={"message_ttl_seconds": 60}
    ).raise_for_status()
    send(b, cid, "fleeting: the password itself")
    assert len(found(a, "password")) == 2

    clock.advance(61)
    # Past its time, before the sweep has erased it: already not found.
    assert found(a, "password") == ["kept forever: the password hint"]
    assert found(b, "fleeting") == []
    # And after the sweep.
    run(http, app.wiring.container.messaging.expire_due)
    assert found(a, "password") == ["kept forever: the password hint"]
    assert found(b, "fleeting itself") == []


def test_an_erased_accounts_messages_never_match(register: Callable[..., Account]) -> None:
    gone, b, c = register(), register(), register()
    group = make_group(b, gone, c)
    dm = gone.client.open_direct(b.id).id
    send(gone, group, "my home address is elm street")
    send(gone, dm, "elm street, the blue door")
    send(c, group, "elm street is lovely")
    assert len(found(b, "elm street")) == 3

    gone.client.delete_me(PASSWORD)

    assert found(b, "elm street") == ["elm street is lovely"]
    assert found(c, "elm street") == ["elm street is lovely"]
    assert found(b, "blue door") == []
    assert found(b, "home address") == []


def test_input_bounds(register: Callable[..., Account]) -> None:
    a, b = register(), register()
    cid = make_group(a, b)
    send(a, cid, "hello")
    assert error(raw_search(a, q="")) == (422, "empty_query")
    assert error(raw_search(a, q="  !!! ... ")) == (422, "empty_query")
    assert error(raw_search(a, q="x" * 257)) == (422, "query_too_long")
    assert raw_search(a, q="x" * 256).status_code == 200
    assert raw_search(a, q=" ".join(["hi"] * 85)).status_code == 200  # any number of words
    assert error(raw_search(a, q="hel\x01lo")) == (422, "invalid_characters")
    assert error(raw_search(a)) == (422, "validation_error")  # q is required
    for limit in (0, 101, -1):
        assert 400 <= raw_search(a, q="hello", limit=limit).status_code < 500, limit
    assert len(raw_search(a, q="hello", limit=100).json()["items"]) == 1
    # Signed out: 401.
    anonymous = a.client.with_token(None)
    assert anonymous.raw("GET", SEARCH, params={"q": "hello"}).status_code == 401
    with pytest.raises(ApiError) as refused:
        a.client.search_messages("")
    assert refused.value.code == "empty_query"
