"""The presence refresh keeps every connected user's entry alive, batch by batch."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import msgspec

from socius.cache.memory import MemoryCache
from socius.realtime.presence import Presence

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


class CountingCache(MemoryCache):
    def __init__(self) -> None:
        super().__init__()
        self.set_many_calls: list[int] = []

    async def set_many(self, items: Sequence[tuple[str, bytes, float]]) -> None:
        self.set_many_calls.append(len(items))
        await super().set_many(items)


async def test_refresh_renews_each_entry_keeping_other_nodes() -> None:
    cache = CountingCache()
    now = NOW.timestamp()
    # Another node holds user 7 until now + 30 s; user 8's other node has expired.
    await cache.set("presence:7", msgspec.json.encode({"far": now + 30}), ttl=30)
    await cache.set("presence:8", msgspec.json.encode({"gone": now - 1}), ttl=30)
    presence = Presence(
        cache,
        cast(Any, None),  # delivery and graph: not used by a refresh
        cast(Any, None),
        lambda: NOW,
        node="here",
        connected=lambda _u: True,
        ttl=60,
    )
    users = list(range(1, 1_204))
    await presence.refresh(users)

    assert cache.set_many_calls == [500, 500, 203]
    raw = await cache.get_many([f"presence:{u}" for u in users])
    maps = [msgspec.json.decode(r) for r in raw if r is not None]
    assert len(maps) == len(users)
    assert all(m["here"] == now + 60 for m in maps)
    assert maps[6] == {"far": now + 30, "here": now + 60}
    assert maps[7] == {"here": now + 60}
    assert 55 < await cache.ttl("presence:7") <= 60
