"""DataLoaders: a page of conversations with their last messages, senders and members runs
a fixed number of SQL statements, however many conversations the page holds."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from graphql_support import gql

from conftest import Account
from socius.settings import Settings

PAGE = """
query($n: Int) {
  conversations(first: $n) {
    edges { node {
      id kind memberIds unreadCount
      lastMessage { body sender { username relationship { friend } } }
      members(first: 10) { nodes { role user { username } } pageInfo { hasNextPage } }
    } }
    pageInfo { hasNextPage }
  }
}"""

# One statement each: the page of conversations (with the caller's membership), their
# last messages, those messages' reactions, the members of the direct ones, the first
# members of all of them. While the cache does not hold them yet, the relationships and
# profiles of everyone shown, a statement each per batch: the senders' batch, then the
# members' (what the first has not read by then: how much depends on timing).
WARM = 5
COLD_AT_MOST = WARM + 4

# What the app's background loops run whenever their timers fire (the revocation list's
# safety-net read every few seconds, the sweep of expired messages): on a loaded machine
# they can land inside the counted window, and are not the page's statements.
_BACKGROUND = ("FROM revoked_sessions", "WHERE messages.expires_at <=")


def _page_statements(seen: list[str]) -> list[str]:
    return [s for s in seen if not any(mark in s for mark in _BACKGROUND)]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(limit_groups=0)  # one user makes many groups here


def _setup(register: Callable[..., Account], size: int) -> Account:
    me = register()
    others = [register() for _ in range(3)]
    for k in range(size):
        if k % 2:
            peer = register()
            cid = gql(
                me,
                "mutation($u: ID!) { openDirectConversation(userId: $u) { id } }",
                u=peer.id,
            )["openDirectConversation"]["id"]
            sender = peer
        else:
            cid = gql(
                me,
                'mutation($m: [ID!]!) { createGroup(title: "g", memberIds: $m) { id } }',
                m=[o.id for o in others],
            )["createGroup"]["id"]
            sender = others[k % 3]
        gql(
            sender,
            "mutation($c: ID!, $k: String!) { sendMessage(conversationId: $c, clientMsgId: $k, "
            'body: "hi") { id } }',
            c=cid,
            k=uuid.uuid4().hex,
        )
    return me


@pytest.mark.slow
@pytest.mark.parametrize("size", [50, 4])
def test_a_page_of_conversations_runs_a_fixed_number_of_statements(
    register: Callable[..., Account], count_queries: Callable[[], Any], size: int
) -> None:
    me = _setup(register, size)
    with count_queries() as cold:
        page = gql(me, PAGE, n=50)["conversations"]
    nodes = [e["node"] for e in page["edges"]]
    assert len(nodes) == size
    for node in nodes:
        assert node["lastMessage"]["body"] == "hi"
        assert node["lastMessage"]["sender"]["username"]
        assert node["lastMessage"]["sender"]["relationship"] == {"friend": False}
        assert len(node["members"]["nodes"]) == (2 if node["kind"] == "direct" else 4)
        assert all(m["user"]["username"] for m in node["members"]["nodes"])
        assert (node["memberIds"] is None) == (node["kind"] == "group")
    cold = _page_statements(cold)
    assert WARM < len(cold) <= COLD_AT_MOST, "\n".join(s[:90] for s in cold)
    with count_queries() as warm:
        again = gql(me, PAGE, n=50)["conversations"]
    assert again == page
    warm = _page_statements(warm)
    assert len(warm) == WARM, "\n".join(s[:90] for s in warm)
