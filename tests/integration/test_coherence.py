"""The node caches stay coherent: two nodes read one user's profile, own account and
friends while writes to them land on either node; once a write's invalidation has crossed
(its window), no stale read survives on either node (docs/decisions/0016).

Readers hammer both nodes all along, so that fills race the invalidations (the stale-set
race: a value read before a write stored after its invalidation).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from conftest import NATS_URL, PASSWORD, unique_name
from socius.client import AsyncClient
from socius.settings import Settings
from two_nodes import Node, eventually, two_nodes

ROUNDS = 24
WINDOW = 5.0  # seconds a write's invalidation may take to be seen (it takes milliseconds)


@pytest.fixture(params=["default", "nats"])
def bus_kind(request: pytest.FixtureRequest, stack: str) -> str:
    kind = str(request.param)
    if stack == "sqlite" and kind == "nats":
        pytest.skip("the embedded stack has its in-process bus")
    if stack == "postgres" and kind == "nats" and not NATS_URL:
        pytest.skip("NATS is not available (SOCIUS_TEST_NATS_URL)")
    return kind


class Person:
    def __init__(self, token: str, user_id: str) -> None:
        self.token = token
        self.id = user_id

    def on(self, node: Node) -> dict[str, str]:
        return node.bearer(self.token)


async def join(node: Node) -> Person:
    auth = await AsyncClient(http=node.http).register(unique_name(), PASSWORD)
    assert auth.access_token
    return Person(auth.access_token, auth.user.id)


async def seen(node: Node, owner: Person, viewer: Person) -> dict[str, Any]:
    """What ``node`` shows of ``owner``: to the owner (/v1/me, own friends) and to another."""
    me = (await node.http.get("/v1/me", headers=owner.on(node))).json()
    profile = (await node.http.get(f"/v1/users/{owner.id}", headers=viewer.on(node))).json()
    friends = (await node.http.get("/v1/friends", headers=owner.on(node))).json()
    return {
        "me": me["display_name"],
        "profile": profile["display_name"],
        "friends_count": profile["friends_count"],
        "friends": sorted(f["id"] for f in friends["items"]),
    }


async def test_no_stale_read_survives_the_invalidation_window(
    stack: str, bus_kind: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(**({"nats_url": NATS_URL} if bus_kind == "nats" else {}))
    async with two_nodes(stack, settings) as (a, b):
        owner, viewer, pal = await join(a), await join(a), await join(b)
        stop = asyncio.Event()

        async def hammer(node: Node) -> int:
            reads = 0
            while not stop.is_set():
                await seen(node, owner, viewer)
                reads += 1
                await asyncio.sleep(0)  # SQLite runs on the loop: let the others in
            return reads

        readers = [asyncio.create_task(hammer(node)) for node in (a, b, a, b)]
        try:
            friends: list[str] = []
            for i in range(ROUNDS):
                writer = (a, b)[i % 2]
                name = f"version {i}"
                response = await writer.http.patch(
                    "/v1/me", json={"display_name": name}, headers=owner.on(writer)
                )
                assert response.status_code == 200, response.text
                await asyncio.sleep(0)  # the readers' turn, between the write and the next
                if i % 3 == 0:  # befriend the pal, or unfriend them, through either node
                    if friends:
                        path = f"/v1/friends/{pal.id}"
                        assert (await writer.http.delete(path, headers=owner.on(writer))).is_success
                        friends = []
                    else:
                        await writer.http.post(
                            "/v1/friends/requests", json={"user_id": owner.id}, headers=pal.on(a)
                        )
                        accept = f"/v1/friends/requests/{pal.id}/accept"
                        assert (await writer.http.post(accept, headers=owner.on(writer))).is_success
                        friends = [pal.id]
                expected = {
                    "me": name,
                    "profile": name,
                    "friends_count": len(friends),
                    "friends": friends,
                }
                for node in (a, b):

                    async def current(n: Node = node, want: Any = expected) -> bool:
                        return await seen(n, owner, viewer) == want

                    await eventually(current, within=WINDOW, what=f"round {i} on a node")
                # Past the window, while the readers keep filling: nothing older comes back.
                for _ in range(3):
                    for node in (a, b):
                        assert await seen(node, owner, viewer) == expected, (i, node)
        finally:
            stop.set()
            counts = await asyncio.gather(*readers)
        assert all(count > 0 for count in counts), counts
        # The L1 served: each node answered warm reads from memory.
        for node in (a, b):
            assert await node.metric("cache_requests_total", cache="l1", result="hit") > 0
