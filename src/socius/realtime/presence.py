"""Presence: a user is online while they have at least one live connection on any node.

The cache (Redis when clustered) holds ``presence:<uid>``: a small JSON map of the nodes
that hold a connection of that user, each with its own expiry. A node adds itself when
the user's first connection on it arrives, refreshes its entry every ``refresh`` seconds
while connected, and removes itself when the last one leaves; an entry of a node that died
expires after ``ttl`` seconds. The read-modify-write is not atomic: if two nodes change one
user's map at the same instant, one entry can be lost, and the refresh puts it back within
``refresh`` seconds. When the map becomes empty the key is deleted and ``last_seen:<uid>``
records the time.

On the offline -> online and online -> offline transitions an ephemeral ``presence`` event
``{user_id, online, last_seen_at}`` goes to the user's friends: the newest
``MAX_FRIENDS`` of them (a user with more friends does not announce to the oldest ones;
they still see the state through ``GET /v1/presence``).

Presence is best effort: a cache outage reads as "offline, never seen" and never fails
a request or a connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import msgspec
import structlog

from socius.domain.errors import CacheUnavailable, InvalidInput
from socius.domain.graph import EdgeType
from socius.services.delivery import Delivery
from socius.services.graph_cache import HEAD_SIZE, GraphCache
from socius.services.ports import Cache, Clock

__all__ = ["MAX_FRIENDS", "MAX_IDS", "Presence", "PresenceInfo"]

log = structlog.get_logger("socius.realtime")

MAX_FRIENDS = 1000  # presence events go to at most this many (the newest) friends
MAX_IDS = 100  # GET /v1/presence
_LAST_SEEN_TTL = 90 * 24 * 3600.0
_BATCH = 500  # users reconciled per cache multi-get

_nodes_decoder = msgspec.json.Decoder(dict[str, float])
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class PresenceInfo:
    user_id: int
    online: bool
    last_seen_at: datetime | None


def _presence_key(user_id: int) -> str:
    return f"presence:{user_id}"


def _entry(user_id: int, nodes: dict[str, float], now: float) -> tuple[str, bytes, float]:
    """The cache item of a user's presence map: it lives as long as its newest node."""
    return _presence_key(user_id), _encode(nodes), max(max(nodes.values()) - now, 1.0)


def _last_seen_key(user_id: int) -> str:
    return f"last_seen:{user_id}"


def _parse_time(raw: bytes | None) -> datetime | None:
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(raw.decode())
    except (UnicodeDecodeError, ValueError):
        return None


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


class Presence:
    def __init__(
        self,
        cache: Cache,
        delivery: Delivery,
        graph: GraphCache,
        clock: Clock,
        *,
        node: str,
        connected: Callable[[int], bool],
        ttl: float = 60.0,
        refresh: float = 20.0,
    ) -> None:
        """``connected(user_id)``: whether the user has a connection on this node now."""
        self._cache = cache
        self._connected = connected
        self._dirty: dict[int, None] = {}  # users to reconcile, in the order they changed
        self._reconciler: asyncio.Task[None] | None = None
        self._delivery = delivery
        self._graph = graph
        self._clock = clock
        self._node = node
        self.ttl = ttl
        self.refresh_interval = refresh

    def _live(self, raw: bytes | None, now: float) -> dict[str, float]:
        if raw is None:
            return {}
        try:
            nodes = _nodes_decoder.decode(raw)
        except msgspec.DecodeError:
            return {}
        return {node: until for node, until in nodes.items() if until > now}

    async def _store(self, user_id: int, nodes: dict[str, float], now: float) -> None:
        await self._cache.set_many([_entry(user_id, nodes, now)])

    def changed(self, user_id: int) -> None:
        """The user's first connection on this node arrived, or their last one left: the
        reconciler brings their entry in line with ``connected`` soon (never waits)."""
        self._dirty[user_id] = None
        if self._reconciler is None or self._reconciler.done():
            self._reconciler = asyncio.create_task(self._reconcile(), name="socius-presence-sync")

    async def settle(self) -> None:
        """Wait until every change told so far is reconciled (tests, shutdown)."""
        while self._reconciler is not None and not self._reconciler.done():
            await asyncio.shield(self._reconciler)

    async def _reconcile(self) -> None:
        while self._dirty:
            batch = list(self._dirty)[:_BATCH]
            for user_id in batch:
                del self._dirty[user_id]
            try:
                await self._sync(batch)
            except Exception:  # best effort: the next change or refresh repairs it
                log.exception("presence_sync_failed", users=len(batch))

    async def _sync(self, user_ids: list[int]) -> None:
        """Bring this node's entries of ``user_ids`` in line with who is connected here,
        announcing the offline <-> online transitions."""
        when = self._clock()
        now = when.timestamp()
        online: list[int] = []
        offline: list[int] = []
        try:
            found = await self._cache.get_many([_presence_key(u) for u in user_ids])
            for user_id, raw in zip(user_ids, found, strict=True):
                nodes = self._live(raw, now)
                mine = self._node in nodes
                if self._connected(user_id):
                    if mine:
                        continue
                    was_online = bool(nodes)
                    nodes[self._node] = now + self.ttl
                    await self._store(user_id, nodes, now)
                    if not was_online:
                        online.append(user_id)
                elif mine:
                    # (No entry of ours: never registered, or erased meanwhile, which
                    # deletes the presence keys: nothing to undo, nothing to announce.)
                    del nodes[self._node]
                    if nodes:
                        await self._store(user_id, nodes, now)
                        continue
                    await self._cache.delete(_presence_key(user_id))
                    await self._cache.set(
                        _last_seen_key(user_id), _iso(when).encode(), ttl=_LAST_SEEN_TTL
                    )
                    offline.append(user_id)
        except CacheUnavailable:
            log.warning("presence_unavailable", op="sync", users=len(user_ids))
        await self._announce(online, online=True, when=when)
        await self._announce(offline, online=False, when=when)

    async def refresh(self, user_ids: Sequence[int]) -> None:
        """Keep this node's entries alive for the users connected here: per batch one
        multi-get and one pipelined multi-set (was one SET round trip per user)."""
        for start in range(0, len(user_ids), _BATCH):
            batch = user_ids[start : start + _BATCH]
            now = self._clock().timestamp()
            try:
                found = await self._cache.get_many([_presence_key(u) for u in batch])
                entries = []
                for user_id, raw in zip(batch, found, strict=True):
                    nodes = self._live(raw, now)
                    nodes[self._node] = now + self.ttl
                    entries.append(_entry(user_id, nodes, now))
                await self._cache.set_many(entries)
            except CacheUnavailable:
                log.warning("presence_unavailable", op="refresh", users=len(batch))
                return

    async def _announce(self, user_ids: list[int], *, online: bool, when: datetime) -> None:
        """Tell each user's newest MAX_FRIENDS friends (their lists' heads in one read)."""
        if not user_ids:
            return
        heads = await self._graph.heads(user_ids, EdgeType.FRIEND, limit=HEAD_SIZE)
        for user_id in user_ids:
            rows = heads.get(user_id) or []
            if len(rows) >= HEAD_SIZE:  # more friends than a head holds
                rows = await self._graph.edge_page(
                    user_id, EdgeType.FRIEND, limit=MAX_FRIENDS, before_pos=None
                )
            if not rows:
                continue
            payload = {"user_id": str(user_id), "online": online, "last_seen_at": _iso(when)}
            await self._delivery.ephemeral([r.dst for r in rows], "presence", payload)

    async def online_among(self, user_ids: Sequence[int]) -> set[int]:
        """Those of ``user_ids`` with a live connection on this node or any other (the
        notifier pushes to the others). A cache outage: this node's users only."""
        here = {u for u in user_ids if self._connected(u)}
        rest = [u for u in user_ids if u not in here]
        if not rest:
            return here
        now = self._clock().timestamp()
        try:
            found = await self._cache.get_many([_presence_key(u) for u in rest])
        except CacheUnavailable:
            log.warning("presence_unavailable", op="online", users=len(rest))
            return here
        return here | {u for u, raw in zip(rest, found, strict=True) if self._live(raw, now)}

    async def lookup(self, viewer: int, user_ids: Sequence[int]) -> list[PresenceInfo]:
        """Presence of those of ``user_ids`` who are ``viewer``'s friends (the others are
        left out), in the order asked."""
        if len(user_ids) > MAX_IDS:
            raise InvalidInput(
                f"at most {MAX_IDS} ids", code="too_many_ids", details={"field": "ids"}
            )
        unique = [u for u in dict.fromkeys(user_ids) if u != viewer]
        if not unique:
            return []
        relations = await self._graph.relationships(viewer, unique)
        friends = [u for u in unique if EdgeType.FRIEND in relations.get(u, frozenset())]
        if not friends:
            return []
        now = self._clock()
        try:
            found = await self._cache.get_many(
                [_presence_key(u) for u in friends] + [_last_seen_key(u) for u in friends]
            )
        except CacheUnavailable:
            log.warning("presence_unavailable", op="lookup", users=len(friends))
            return [PresenceInfo(u, False, None) for u in friends]
        states, seen = found[: len(friends)], found[len(friends) :]
        out = []
        for user_id, state, last in zip(friends, states, seen, strict=True):
            online = bool(self._live(state, now.timestamp()))
            out.append(PresenceInfo(user_id, online, now if online else _parse_time(last)))
        return out
