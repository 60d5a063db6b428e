"""Profiles read with a list's head are handed to the page as read (decision 0039), but
never past an invalidation: a body built from them must be what L1 would have given."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from socius.bus.memory import MemoryBroker, MemoryBus
from socius.cache.memory import MemoryCache
from socius.domain.graph import EdgeType, ListedUserRow
from socius.services import profiles as profiles_module
from socius.services.bus_link import BusLink
from socius.services.lookaside import LookAside
from socius.services.near_cache import NearCache
from socius.services.profiles import COUNTED, Profile, ProfileService, profiles_read_here

T0 = datetime(2026, 12, 6, tzinfo=UTC)


def row(user_id: int, name: str) -> ListedUserRow:
    return ListedUserRow(user_id, f"u{user_id}", name, "", None, False, T0, True, (0, 0, 0))


class Profiles(ProfileService):
    """Profiles whose misses are read from ``names`` (the database)."""

    def __init__(self, cache: LookAside, names: dict[int, str]) -> None:
        super().__init__(None, cache)  # type: ignore[arg-type]
        self.names = names
        self.loads: list[list[int]] = []

    async def _load_many(self, ids: list[int]) -> dict[int, Profile]:
        self.loads.append(ids)
        return {i: Profile(i, f"u{i}", self.names[i], "", None, False, T0) for i in ids}


async def test_a_page_gets_its_users_as_read_unless_one_was_invalidated_since() -> None:
    link = BusLink(MemoryBus(broker=MemoryBroker()), heartbeat=0.05)
    near = NearCache(max_entries=100, ttl=60, link=link, origin="x")
    await link.start()
    profiles = Profiles(LookAside(MemoryCache(), name="profile", near=near), {1: "A", 2: "B"})
    try:
        with profiles_read_here():
            profiles.remember([(1, row(1, "A")), (2, row(2, "B"))], profiles.ticket())
            found = await profiles.get_many([1, 2])
            assert [found[1].display_name, found[2].display_name] == ["A", "B"]
            assert profiles.loads == []
        with profiles_read_here():
            profiles.remember([(1, row(1, "A")), (2, row(2, "B"))], profiles.ticket())
            near.drop(["p:2"])  # a writer renamed 2 after the read began
            profiles.names[2] = "B renamed"
            found = await profiles.get_many([1, 2])
            assert found[2].display_name == "B renamed"  # not the value read before
            assert profiles.loads == [[2]]
        with profiles_read_here():
            profiles.remember([(1, row(1, "A")), (2, row(2, "B renamed"))], profiles.ticket())
            near.drop(["p:9", "r:1:2", "presence:1"])  # other keys: the read still holds
            hits = near.hits
            found = await profiles.get_many([1, 2])
            assert found[2].display_name == "B renamed"
            assert near.hits == hits  # handed over as read, not looked up in L1
            near.lost()  # invalidations may have been missed: nothing read is handed over
            assert len(await profiles.get_many([1, 2])) == 2
            assert profiles.loads == [[2], [1]]  # (2 from the shared cache)
        # Outside the block nothing is handed over: L1, then the loader.
        profiles.remember([(1, row(1, "stale"))], (-1, 0.0))  # refused: too old a ticket
        assert (await profiles.get_many([1]))[1].display_name == "A"
    finally:
        await link.stop()


def test_counts_read_with_a_head_are_the_profiles_counts() -> None:
    counted = {EdgeType.FRIEND: 3, EdgeType.FOLLOWED_BY: 2, EdgeType.FOLLOWS: 1}
    # counts in the order of the types read (COUNTED), as HotReads gives them
    listed = msgspec.structs.replace(row(7, "C"), counts=tuple(counted[t] for t in COUNTED))
    near = NearCache(max_entries=0, ttl=60, link=None, origin="x")
    profiles = Profiles(LookAside(MemoryCache(), name="profile", near=near), {})
    with profiles_read_here():
        profiles.remember([(7, listed)], profiles.ticket())
        here = profiles_module._READ_HERE.get()
        assert here is not None
        p = here.profiles[7]
        assert p is not None
        assert (p.friends_count, p.followers_count, p.following_count) == (3, 2, 1)
