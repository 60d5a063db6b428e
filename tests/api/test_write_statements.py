"""The hot graph and profile writes of W1 run a fixed, small number of statements
(decision 0027; BEGIN and COMMIT not counted). Pins only ever go down."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from admin_support import grant_admin_from_cli

from conftest import Account, App
from event_support import read_events, relay
from socius.client import ApiError

# (PostgreSQL, SQLite) statements per write. PostgreSQL: one, by itself (decision 0053:
# socius_pair_write takes the pair's lock, reads the pair and writes edges, counts,
# logs, inbox and stream when the pair is as planned; a repeat is that call alone).
# SQLite has no round trips: one statement per table, on the driver.
PINS = {
    "follow": (1, 8),
    "follow again": (1, 2),
    "unfollow": (1, 5),
    "friend request": (1, 8),
    "accept": (1, 9),
}


def _count(count_queries: Callable[[], Any], call: Callable[[], object]) -> list[str]:
    with count_queries() as statements:
        call()
    return list(statements)


def test_graph_writes_run_a_fixed_small_number_of_statements(
    stack: str, register: Callable[..., Account], count_queries: Callable[[], Iterator[list[str]]]
) -> None:
    a, b, c = register(), register(), register()
    ops: dict[str, Callable[[], object]] = {
        "follow": lambda: a.client.request("POST", f"/v1/users/{b.id}/follow"),
        "follow again": lambda: a.client.request("POST", f"/v1/users/{b.id}/follow"),
        "unfollow": lambda: a.client.request("DELETE", f"/v1/users/{b.id}/follow"),
        "friend request": lambda: a.client.request(
            "POST", "/v1/friends/requests", json={"user_id": c.id}
        ),
        "accept": lambda: c.client.request("POST", f"/v1/friends/requests/{a.id}/accept"),
    }
    column = 0 if stack == "postgres" else 1
    for name, call in ops.items():
        statements = _count(count_queries, call)
        assert len(statements) <= PINS[name][column], (name, statements)
    # The writes did what they say.
    assert c.client.request("GET", f"/v1/users/{a.id}").json()["friends_count"] == 1
    assert a.client.request("GET", f"/v1/users/{b.id}").json()["followers_count"] == 0


def test_a_profile_edit_is_one_statement_and_answers_with_the_new_profile(
    stack: str,
    app: App,
    http: Any,
    register: Callable[..., Account],
    count_queries: Callable[[], Iterator[list[str]]],
) -> None:
    """The row, the stream's event and the profile with its counts in one write; the
    answer is read from it, not after it (PostgreSQL: 1, SQLite: 3 statements)."""
    a, b = register(), register()
    grant_admin_from_cli(app, http, a.id)
    b.client.request("POST", f"/v1/users/{a.id}/follow")
    a.client.request("GET", "/v1/me")  # the profile cached before the edit
    with count_queries() as statements:
        me = a.client.request("PATCH", "/v1/me", json={"bio": "new", "is_private": True}).json()
    assert len(statements) <= (1 if stack == "postgres" else 3), statements
    assert me["bio"] == "new"
    assert me["is_private"] is True
    assert me["followers_count"] == 1
    # And every reader sees the edit at once.
    assert a.client.request("GET", "/v1/me").json()["bio"] == "new"
    assert b.client.request("GET", f"/v1/users/{a.id}").json()["bio"] == "new"
    # The stream has the edit once, with the fields it changed.
    relay(app, http)
    token = a.client.access_token
    assert token is not None
    updated = [e for e in read_events(http, token) if e["type"] == "account.updated"]
    assert [e["data"] for e in updated] == [{"user_id": a.id, "fields": ["bio", "is_private"]}]


def test_refused_graph_writes_leave_their_connections_clean(
    register: Callable[..., Account],
) -> None:
    """A graph write refused inside its transaction (no such user: after BEGIN and the
    pair's lock) rolls back and gives its connection back as it found it (decision 0033,
    the driver's unit of work): more of them than the pool holds, then writes on the
    same connections go through and hold."""
    a, b = register(), register()
    for _ in range(30):
        for method in ("POST", "DELETE"):
            with pytest.raises(ApiError) as refused:
                a.client.request(method, "/v1/users/4242424242/follow")
            assert refused.value.status == 404
    assert a.client.request("POST", f"/v1/users/{b.id}/follow").status_code < 300
    assert b.client.request("GET", f"/v1/users/{b.id}").json()["followers_count"] == 1
    assert a.client.request("DELETE", f"/v1/users/{b.id}/follow").status_code < 300
    assert b.client.request("GET", f"/v1/users/{b.id}").json()["followers_count"] == 0
