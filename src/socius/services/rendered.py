"""Response bodies kept in this node's L1, each dropped with the entries it was built from.

A warm read of a friends page found its list head and 50 profiles in the L1 and then
rebuilt 50 view objects and encoded them again on every request (decision 0024). Here
the encoded body itself is held, under a key naming the endpoint and its inputs, with
the keys of everything it was read from as its ``deps`` (services/near_cache.py): when a
writer invalidates any of them (after commit, on every node through the bus), the body
goes too, and a body built from a value read before an invalidation is never stored.

The transport passes ``render`` (its own serializer), so what is cached is exactly what
it would have sent. While the node's bus link is not current nothing is held.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from socius.services.near_cache import MISS, NearCache

__all__ = ["Build", "RenderedBodies"]

#: Builds a body: the bytes, and the cache keys of what they were built from.
Build = Callable[[], Awaitable[tuple[bytes, Sequence[str]]]]


class RenderedBodies:
    __slots__ = ("_near",)

    def __init__(self, near: NearCache | None) -> None:
        self._near = near

    async def body(self, key: str, build: Build) -> bytes:
        """The body held for ``key``, else ``build()``'s, held from now on."""
        near = self._near
        if near is None or not near.enabled:
            return (await build())[0]
        held = near.get(key)
        if held is not MISS:
            return held  # type: ignore[no-any-return]
        ticket = near.begin()
        body, deps = await build()
        near.put(key, body, ticket, deps)
        return body
