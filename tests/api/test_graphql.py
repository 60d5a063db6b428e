"""GraphQL at /graphql: the same answers, rules and error codes as REST, on both stacks."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from graphql import get_introspection_query
from graphql_support import codes, gql, gql_error
from litestar.testing import TestClient

from conftest import Account
from socius.client import AsyncClient, GraphQLError

ME = "{ me { id username displayName email dmPolicy friendsCount } }"
FRIENDS = """
query($first: Int, $after: String, $userId: ID) {
  friends(userId: $userId, first: $first, after: $after) {
    edges { cursor since node { id username relationship { friend blocking } } }
    pageInfo { hasNextPage endCursor }
  }
}"""


def befriend(a: Account, b: Account) -> None:
    gql(a, "mutation($u: ID!) { sendFriendRequest(userId: $u) { requestSent } }", u=b.id)
    rel = gql(b, "mutation($u: ID!) { acceptFriendRequest(userId: $u) { friend } }", u=a.id)
    assert rel["acceptFriendRequest"]["friend"] is True


def group(a: Account, *others: Account, title: str = "g") -> str:
    data = gql(
        a,
        "mutation($t: String!, $m: [ID!]!) { "
        "createGroup(title: $t, memberIds: $m) { id kind role } }",
        t=title,
        m=[o.id for o in others],
    )
    assert data["createGroup"]["kind"] == "group"
    assert data["createGroup"]["role"] == "owner"
    return str(data["createGroup"]["id"])


SEND = """
mutation($c: ID!, $k: String!, $b: String!) {
  sendMessage(conversationId: $c, clientMsgId: $k, body: $b) { id seq body sender { id } }
}"""


def send(a: Account, cid: str, body: str = "hi", key: str | None = None) -> dict[str, Any]:
    return dict(gql(a, SEND, c=cid, k=key or uuid.uuid4().hex, b=body)["sendMessage"])


def test_me_is_rest_me_and_profile_updates(register: Callable[..., Account]) -> None:
    a = register()
    rest = a.client.request("GET", "/v1/me").json()
    me = gql(a, ME)["me"]
    assert me == {
        "id": rest["id"],
        "username": rest["username"],
        "displayName": rest["display_name"],
        "email": rest["email"],
        "dmPolicy": rest["dm_policy"],
        "friendsCount": 0,
    }
    changed = gql(
        a,
        "mutation($p: ProfileInput!) { updateProfile(input: $p) { displayName bio isPrivate } }",
        p={"displayName": "Ada L.", "isPrivate": True},
    )["updateProfile"]
    assert changed == {"displayName": "Ada L.", "bio": "", "isPrivate": True}
    assert a.client.request("GET", "/v1/me").json()["display_name"] == "Ada L."

    # The rules are REST's own: the same refusal, with the same code.
    long_name = "x" * 65
    rest_refusal = a.client.raw("PATCH", "/v1/me", json={"display_name": long_name}).json()
    error = gql_error(
        a,
        "mutation($p: ProfileInput!) { updateProfile(input: $p) { displayName } }",
        p={"displayName": long_name},
    )
    assert error.code == rest_refusal["error"]["code"]
    assert error.data is None
    bad_policy = gql_error(
        a,
        'mutation { updateProfile(input: {dmPolicy: "nobody"}) { dmPolicy } }',
    )
    assert bad_policy.code == "validation_error"


def test_friends_pages_with_opaque_cursors(register: Callable[..., Account]) -> None:
    a, b, c, d = register(), register(), register(), register()
    for other in (b, c, d):
        befriend(a, other)
    rest_ids = [u["id"] for u in a.client.request("GET", "/v1/friends").json()["items"]]
    first = gql(a, FRIENDS, first=2)["friends"]
    assert [e["node"]["id"] for e in first["edges"]] == rest_ids[:2]
    assert first["pageInfo"]["hasNextPage"] is True
    assert first["edges"][-1]["cursor"] == first["pageInfo"]["endCursor"]
    assert first["edges"][0]["cursor"] is None
    assert all(
        e["node"]["relationship"] == {"friend": True, "blocking": False} for e in first["edges"]
    )
    rest = gql(a, FRIENDS, first=2, after=first["pageInfo"]["endCursor"])["friends"]
    assert [e["node"]["id"] for e in rest["edges"]] == rest_ids[2:]
    assert rest["pageInfo"] == {"hasNextPage": False, "endCursor": None}
    # Someone else's list, and the same limits and cursor checks as REST.
    theirs = gql(a, FRIENDS, userId=b.id)["friends"]
    assert [e["node"]["id"] for e in theirs["edges"]] == [a.id]
    assert codes(gql_error(a, FRIENDS, first=0)) == ["invalid_limit"]
    assert codes(gql_error(a, FRIENDS, first=101)) == ["invalid_limit"]
    assert codes(gql_error(a, FRIENDS, after="not-a-cursor")) == ["invalid_cursor"]
    assert codes(gql_error(a, FRIENDS, userId="12x")) == ["user_not_found"]
    mutual = gql(a, "query($u: ID!) { mutualFriends(userId: $u) { nodes { id } } }", u=b.id)[
        "mutualFriends"
    ]
    assert mutual["nodes"] == []
    assert gql(c, FRIENDS, userId=a.id)["friends"]["edges"]


def test_follow_private_and_lists(register: Callable[..., Account]) -> None:
    a, b, c = register(), register(), register()
    gql(b, "mutation { updateProfile(input: {isPrivate: true}) { isPrivate } }")
    requested = gql(
        a, "mutation($u: ID!) { follow(userId: $u) { following followRequested } }", u=b.id
    )
    assert requested["follow"] == {"following": False, "followRequested": True}
    followed = gql(c, "mutation($u: ID!) { follow(userId: $u) { following } }", u=a.id)
    assert followed["follow"]["following"] is True
    followers = gql(a, "{ followers { nodes { id } } following { nodes { id } } }")
    assert followers == {"followers": {"nodes": [{"id": c.id}]}, "following": {"nodes": []}}
    # b is private and a is not their friend: the lists are hidden, as REST hides them.
    hidden = gql_error(a, "query($u: ID!) { followers(userId: $u) { nodes { id } } }", u=b.id)
    assert hidden.code == a.client.raw("GET", f"/v1/users/{b.id}/followers").json()["error"]["code"]


def test_blocks_hide_everywhere(register: Callable[..., Account]) -> None:
    a, b, c = register(), register(), register()
    befriend(c, a)
    befriend(c, b)
    cid = group(c, a, b)
    send(b, cid, "from b")
    gql(a, "mutation($u: ID!) { block(userId: $u) { blocking } }", u=b.id)

    for query, variables in [
        ("query($u: ID) { user(id: $u) { id } }", {"u": b.id}),
        ("query($n: String) { user(username: $n) { id } }", {"n": b.username}),
        ("query($u: ID!) { friends(userId: $u) { nodes { id } } }", {"u": b.id}),
    ]:
        assert codes(gql_error(a, query, **variables)) == ["user_not_found"]
    search = gql(a, "query($q: String!) { users(search: $q) { nodes { id } } }", q=b.username)
    assert search["users"]["nodes"] == []
    # c's friends, seen by a: b is left out, as REST leaves them out.
    seen = gql(a, "query($u: ID!) { friends(userId: $u) { nodes { id } } }", u=c.id)
    assert [n["id"] for n in seen["friends"]["nodes"]] == [
        u["id"] for u in a.client.request("GET", f"/v1/users/{c.id}/friends").json()["items"]
    ]
    assert b.id not in [n["id"] for n in seen["friends"]["nodes"]]
    # The truth about the pair, as GET /v1/relationships tells it.
    rel = gql(
        a, "query($i: [ID!]!) { relationships(ids: $i) { userId blocking blockedBy } }", i=[b.id]
    )
    assert rel["relationships"] == [{"userId": b.id, "blocking": True, "blockedBy": False}]
    # In the shared group b's message stays, but b's profile is not shown to a.
    history = gql(
        a,
        "query($c: ID!) { conversation(id: $c) { messages { body senderId sender { id } } "
        "members { nodes { userId user { id } } } } }",
        c=cid,
    )["conversation"]
    assert history["messages"] == [{"body": "from b", "senderId": b.id, "sender": None}]
    users = {m["userId"]: m["user"] for m in history["members"]["nodes"]}
    assert users[b.id] is None
    assert users[c.id] == {"id": c.id}
    # A direct conversation across the block is read-only: the same code as REST.
    direct = gql_error(a, "mutation($u: ID!) { openDirectConversation(userId: $u) { id } }", u=b.id)
    assert direct.code == "blocked"


def test_conversation_and_messages(register: Callable[..., Account]) -> None:
    a, b, c = register(), register(), register()
    befriend(a, b)
    cid = group(a, b)
    first = send(a, cid, "hello", key="k1")
    assert first["seq"] == 1
    assert first["sender"] == {"id": a.id}
    again = send(a, cid, "hello", key="k1")
    assert again["id"] == first["id"]  # a retry finds the original
    reply = gql(
        b,
        'mutation($c: ID!, $r: ID) { sendMessage(conversationId: $c, clientMsgId: "x", '
        'body: "yo", replyTo: $r) { replyTo } }',
        c=cid,
        r=first["id"],
    )
    assert reply["sendMessage"]["replyTo"] == first["id"]
    edited = gql(
        a,
        "mutation($c: ID!, $m: ID!) { editMessage(conversationId: $c, messageId: $m, "
        'body: "hello!") { body editedAt } }',
        c=cid,
        m=first["id"],
    )["editMessage"]
    assert edited["body"] == "hello!"
    assert edited["editedAt"]
    reacted = gql(
        b,
        'mutation($c: ID!, $m: ID!) { react(conversationId: $c, messageId: $m, emoji: "👍") '
        "{ reactions { emoji count } } }",
        c=cid,
        m=first["id"],
    )
    assert reacted["react"]["reactions"] == [{"emoji": "👍", "count": 1}]
    read = gql(
        b, "mutation($c: ID!) { markRead(conversationId: $c, seq: 2) { lastReadSeq } }", c=cid
    )
    assert read["markRead"]["lastReadSeq"] == 2
    added = gql(
        a,
        "mutation($c: ID!, $u: [ID!]!) { "
        "addMembers(conversationId: $c, userIds: $u) { memberCount } }",
        c=cid,
        u=[c.id],
    )
    assert added["addMembers"]["memberCount"] == 3
    view = gql(
        a,
        "query($c: ID!) { conversation(id: $c) { id unreadCount lastMessage { body } "
        "messages(afterSeq: 0, limit: 10) { seq body } members(first: 2) { nodes { userId role } "
        "pageInfo { hasNextPage endCursor } } } }",
        c=cid,
    )["conversation"]
    rest = a.client.request("GET", f"/v1/conversations/{cid}/messages").json()["items"]
    assert [(m["seq"], m["body"]) for m in view["messages"]] == [
        (m["seq"], m["body"]) for m in rest
    ]
    assert view["lastMessage"] == {"body": "yo"}
    assert view["members"]["pageInfo"]["hasNextPage"] is True
    more = gql(
        a,
        "query($c: ID!, $after: String) { conversation(id: $c) { members(first: 2, after: $after) "
        "{ nodes { userId } pageInfo { hasNextPage } } } }",
        c=cid,
        after=view["members"]["pageInfo"]["endCursor"],
    )["conversation"]["members"]
    assert len(view["members"]["nodes"]) + len(more["nodes"]) == 3
    assert more["pageInfo"]["hasNextPage"] is False
    deleted = gql(
        a,
        "mutation($c: ID!, $m: ID!) { "
        "deleteMessage(conversationId: $c, messageId: $m) { body deleted } }",
        c=cid,
        m=first["id"],
    )
    assert deleted["deleteMessage"] == {"body": None, "deleted": True}
    listed = gql(
        b, "{ conversations { edges { node { id unreadCount } } pageInfo { hasNextPage } } }"
    )
    assert [e["node"]["id"] for e in listed["conversations"]["edges"]] == [cid]
    assert codes(gql_error(a, SEND, c=cid, k="k2", b="x" * 4001)) == [
        a.client.raw(
            "POST",
            f"/v1/conversations/{cid}/messages",
            json={"client_msg_id": "k3", "body": "x" * 4001},
        ).json()["error"]["code"]
    ]


def test_someone_elses_conversation_is_not_found(register: Callable[..., Account]) -> None:
    a, b, outsider = register(), register(), register()
    befriend(a, b)
    cid = group(a, b)
    message = send(a, cid)
    for query, variables in [
        ("query($c: ID!) { conversation(id: $c) { id } }", {"c": cid}),
        ("query($c: ID!) { conversation(id: $c) { id } }", {"c": "nope"}),
        (SEND, {"c": cid, "k": "z", "b": "let me in"}),
        (
            "mutation($c: ID!, $m: ID!) { "
            "deleteMessage(conversationId: $c, messageId: $m) { id } }",
            {"c": cid, "m": message["id"]},
        ),
        ("mutation($c: ID!) { markRead(conversationId: $c, seq: 1) { lastReadSeq } }", {"c": cid}),
    ]:
        error = gql_error(outsider, query, **variables)
        assert codes(error) == ["conversation_not_found"], (query, error.errors)
    assert gql(outsider, "{ conversations { nodes { id } } }") == {"conversations": {"nodes": []}}


def test_authentication_is_rests(register: Callable[..., Account], http: TestClient[Any]) -> None:
    a = register()
    anonymous = http.post("/graphql", json={"query": ME})
    assert anonymous.status_code == 200
    (error,) = anonymous.json()["errors"]
    assert error["extensions"]["code"] == "missing_token"
    assert error["path"] == ["me"]
    assert "locations" in error
    assert "stack" not in str(error).lower()
    bad = http.post("/graphql", json={"query": ME}, headers={"Authorization": "Bearer nope"})
    rest_bad = http.get("/v1/me", headers={"Authorization": "Bearer nope"})
    assert bad.json()["errors"][0]["extensions"]["code"] == rest_bad.json()["error"]["code"]
    # A revoked session stops at once, as on REST.
    token = a.client.access_token
    a.client.request("POST", "/v1/auth/logout")
    revoked = http.post(
        "/graphql", json={"query": ME}, headers={"Authorization": f"Bearer {token}"}
    )
    assert revoked.json()["errors"][0]["extensions"]["code"] == "session_revoked"
    # The schema describes itself to anyone (GraphiQL needs it before a token is typed).
    schema = http.post("/graphql", json={"query": "{ __schema { queryType { name } } }"})
    assert schema.json() == {"data": {"__schema": {"queryType": {"name": "Query"}}}}


def test_limits_and_query_errors(register: Callable[..., Account], http: TestClient[Any]) -> None:
    a = register()
    deepest = (  # 9 levels: as deep as this schema goes
        "{ conversations { edges { node { members { edges { node { user { relationship "
        "{ userId } } } } } } } } }"
    )
    assert gql(a, deepest) == {"conversations": {"edges": []}}
    too_deep = '{ __type(name: "Query") { ' + "ofType { " * 15 + "name" + " }" * 15 + " } }"
    error = gql_error(a, too_deep)
    assert codes(error) == ["query_too_deep"]
    assert error.details == {"depth": 17, "max_depth": 15}
    assert error.data is None
    costly = (
        "query($n: Int) { conversations(first: $n) { edges { node { "
        "members(first: $n) { edges { node { userId role joinedAt user { id username } } } } "
        "} } } }"
    )
    assert gql(a, costly, n=10)
    refused = gql_error(a, costly, n=100)
    assert codes(refused) == ["query_too_complex"]
    assert refused.details["cost"] > refused.details["max_cost"]
    bomb = (
        "{ __schema { types { fields { type { fields { type { fields { type { fields { name "
        "} } } } } } } } } }"
    )
    assert codes(gql_error(a, bomb)) == ["invalid_query"]  # graphql-core's introspection rule
    graphiql = http.post("/graphql", json={"query": get_introspection_query(descriptions=True)})
    assert graphiql.json()["data"]["__schema"]["queryType"]["name"] == "Query"
    assert codes(gql_error(a, "{ me { nope } }")) == ["invalid_query"]
    assert codes(gql_error(a, "{ me { id }")) == ["invalid_query"]
    huge = "{ " + " ".join(f"a{k}: me {{ id }}" for k in range(2000)) + " }"
    assert codes(gql_error(a, huge)) == ["invalid_query"]  # past the parser's token limit
    not_json = http.post("/graphql", content=b"{", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400
    assert not_json.json()["errors"][0]["extensions"]["code"] == "bad_request"
    over_get = http.get(
        "/graphql", params={"query": 'mutation { unfriend(userId: "1") { friend } }'}
    )
    assert over_get.status_code == 400


def test_outage_is_503_unavailable(
    register: Callable[..., Account],
    http: TestClient[Any],
    app: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from socius.domain.errors import Unavailable

    a = register()

    async def down(*_a: object, **_k: object) -> None:
        raise Unavailable("the database is unavailable; retry shortly")

    monkeypatch.setattr(app.wiring.container.messaging, "list_for", down)
    answer = http.post(
        "/graphql",
        json={"query": "{ conversations { nodes { id } } }"},
        headers={"Authorization": f"Bearer {a.client.access_token}"},
    )
    assert answer.status_code == 503
    assert int(answer.headers["retry-after"]) >= 1
    assert answer.json()["errors"][0]["extensions"]["code"] == "unavailable"
    with pytest.raises(GraphQLError) as caught:
        a.client.graphql("{ conversations { nodes { id } } }")
    assert (caught.value.status, caught.value.code) == (503, "unavailable")


async def test_async_sdk(async_sdk: Callable[[], AsyncClient]) -> None:
    client = async_sdk()
    auth = await client.register(f"gql_{uuid.uuid4().hex[:8]}", "correct horse battery staple")
    data = await client.graphql("query Me { me { id } }", operation_name="Me")
    assert data == {"me": {"id": auth.user.id}}
    with pytest.raises(GraphQLError) as caught:
        await client.graphql('{ user(id: "1") { id } }')
    assert caught.value.code == "user_not_found"
    assert caught.value.status == 200
