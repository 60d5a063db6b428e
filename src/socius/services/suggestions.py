"""People you may know: friends of friends, ranked by Adamic-Adar, precomputed
(decision 0028, docs/design.md "Suggestions").

A mutual friend ``f`` adds ``1 / log(deg(f))`` to a candidate's score, so a mutual friend
with a huge friend list counts less. Fan-out is bounded: the newest ``FANOUT`` friends of
the viewer and the newest ``FANOUT`` friends of each. The database counts and ranks (two
queries: the viewer's friends with their degrees, then up to FANOUT x FANOUT rows
aggregated where they are). The best ``KEEP`` are kept.

**Off the request path.** A user's list is stored (``suggestion_lists``, one row) and a
request only reads it: one look-aside key (L1, then Redis or the in-process cache, then
that row). A user's very first request stores an empty list, due at once, and wakes the
refresher (``first_request="queue"``, the default), or computes the list then, once
(``"compute"``).

**Refreshed by the refresher** (``SuggestionRefresher``, one active per cluster: a lease,
like the relay and the notifier): a consumer of the durable event stream, so a graph
write does nothing more than it did. Each ``graph.*`` event that changes a friendship, or
removes a request or a block, makes the lists of its two users due (one UPDATE per batch
of events, O(1) per event; a new request or block only hides a user, which the read-time
filter does: decision 0034); the refresher recomputes due lists within a rate budget, and every list
again once it is ``max_age`` old (friends of friends change without the user's own
edges changing: that staleness is bounded by ``max_age``). An erased account's list is
deleted by the erasure; a refresh that raced it deletes it again.

**Privacy holds at read time**, whatever the stored list's age: the list is filtered
against the viewer's current relationships (the graph cache's ``r:<a>:<b>`` entries,
invalidated after every graph write): never the viewer, a friend, a pending request either
way, or anyone blocked either way; a user no longer active has no profile and is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec
import structlog

from socius.domain.errors import Unavailable
from socius.domain.graph import EdgeType
from socius.services.graph_cache import GraphCache, suggestions_key
from socius.services.leased_reader import LeasedReader
from socius.services.lookaside import LookAside, msgpack_codec
from socius.services.ports import Clock, EventStream, HotReads, UnitOfWorkFactory
from socius.services.profiles import Profile, ProfileService

__all__ = [
    "CONSUMER",
    "FANOUT",
    "LEASE",
    "Suggestion",
    "SuggestionRefresher",
    "SuggestionService",
]

FANOUT = 100
KEEP = 100
TTL = 300.0
ROUND = 10  # lists a round waits for when the refresher is behind its budget
LEASE = "suggestions"
CONSUMER = "suggestions"
TYPES = ["graph.*"]  # one subject filter: JetStream filters it on the server
log = structlog.get_logger("socius.suggestions")

_EXCLUDED = frozenset(
    {
        EdgeType.FRIEND,
        EdgeType.REQUEST_IN,
        EdgeType.REQUEST_OUT,
        EdgeType.BLOCKS,
        EdgeType.BLOCKED_BY,
    }
)
# Names of the edge types in graph events' ``added`` / ``removed`` whose change makes
# both users' lists due.
_CHANGES = frozenset(t.name.lower() for t in _EXCLUDED)
# A change that only adds a request or a block (nothing removed: not a friendship ended
# by a block) only hides a user, which the read-time filter already does at once:
# recomputing would only bring in the next candidate. It makes no list due (decision
# 0034: in W1 the friend requests were half the lists made due).
_HIDES = frozenset(
    t.name.lower()
    for t in (EdgeType.REQUEST_OUT, EdgeType.REQUEST_IN, EdgeType.BLOCKS, EdgeType.BLOCKED_BY)
)


class _Candidate(msgspec.Struct, frozen=True, array_like=True):
    user_id: int
    mutual: int
    score: float


_encode, _decode = msgpack_codec(list[_Candidate])
# The same bytes from plain (user, mutual, score) rows, as the database returns them (a
# _Candidate is encoded as an array): no object per candidate on the refresher's path.
_encode_rows = msgspec.msgpack.Encoder().encode


@dataclass(frozen=True, slots=True)
class Suggestion:
    profile: Profile
    mutual_count: int
    score: float


class SuggestionService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        profiles: ProfileService,
        graph: GraphCache,
        cache: LookAside,
        *,
        max_age_seconds: float = 3600.0,
        first_request: str = "queue",
        reads: HotReads | None = None,
    ) -> None:
        """``first_request``: what a user's very first request gets: ``queue`` (an empty
        list; the refresher computes it next) or ``compute`` (the list, computed then and
        stored). ``reads``: the driver's reads, for the cache misses (None or unavailable:
        a unit of work)."""
        self._uow = uow
        self._reads = reads if reads is not None and reads.available else None
        self._clock = clock
        self._profiles = profiles
        self._graph = graph
        self._cache = cache
        self.max_age = timedelta(seconds=max_age_seconds)
        self._queue_first = first_request == "queue"
        self.on_queued: Callable[[], None] = lambda: None  # set by bootstrap: the refresher

    async def suggest(self, viewer: int, *, limit: int) -> list[Suggestion]:
        async def load() -> list[_Candidate]:
            if self._reads is not None:  # one statement on the driver (decision 0034)
                stored = await self._reads.suggestion_list(viewer)
            else:
                async with self._uow(write=False) as uow:  # the primary: a replica may lag
                    stored = await uow.suggestion_lists.get(viewer)
            if stored is not None:
                return _decode(stored)
            # Never computed (the user's first request): compute once and keep it, or
            # keep an empty list that is due at once, for the refresher.
            now = self._clock()
            found = [] if self._queue_first else await self._compute(viewer)
            due = now if self._queue_first else now + self.max_age
            # On the driver (decision 0061): on SQLite the writer's own connection, whose
            # commit leaves its page cache and memory map to the hot reads made there.
            async with self._uow(driver=True) as uow:
                await uow.suggestion_lists.put([(viewer, _encode(found))], now=now, due=due)
                await uow.commit()
            if self._queue_first:
                self.on_queued()
            return found

        candidates = (
            await self._cache.get(
                suggestions_key(viewer), load, ttl=TTL, encode=_encode, decode=_decode
            )
            or []
        )
        top = await self._allowed(viewer, candidates, limit)
        profiles = await self._profiles.get_many([c.user_id for c in top])
        return [
            Suggestion(profiles[c.user_id], c.mutual, round(c.score, 6))
            for c in top
            if c.user_id in profiles
        ]

    async def _allowed(
        self, viewer: int, candidates: Sequence[_Candidate], limit: int
    ) -> list[_Candidate]:
        """The first ``limit`` candidates the viewer may be shown now: the stored list may
        be older than the viewer's last friendship, request or block."""
        kept: list[_Candidate] = []
        start = 0
        while len(kept) < limit and start < len(candidates):
            chunk = [c for c in candidates[start : start + limit] if c.user_id != viewer]
            start += limit
            found = await self._graph.relationships(viewer, [c.user_id for c in chunk])
            kept += [c for c in chunk if not (found[c.user_id] & _EXCLUDED)]
        return kept[:limit]

    async def _compute(self, viewer: int) -> list[_Candidate]:
        return _decode(_encode_rows((await self._compute_many([viewer]))[viewer]))

    async def _compute_many(
        self, viewers: Sequence[int]
    ) -> dict[int, list[tuple[int, int, float]]]:
        """Each viewer's best ``KEEP`` as (user, mutual, score) rows: the newest ``FANOUT``
        friends, each weighted ``1 / ln(degree)`` (Adamic-Adar; a friend who is not active
        counts as one of degree 2), and the newest ``FANOUT`` friends of each. One read for
        all of them (one statement on PostgreSQL, decision 0034)."""
        async with self._uow(write=False, replica=True, driver=True) as uow:
            return await uow.edges.friends_of_friends(
                viewers,
                EdgeType.FRIEND,
                fanout=FANOUT,
                exclude=_EXCLUDED,
                rank_limit=KEEP * 2,
                limit=KEEP,
            )

    async def refresh(self, users: Sequence[int]) -> None:
        """Recompute and store the lists of ``users``: one read and one write for all of
        them (decision 0034)."""
        if not users:
            return
        found = await self._compute_many(users)
        rows = [(u, _encode_rows(found[u])) for u in users]
        now = self._clock()
        async with self._uow(driver=True) as uow:  # two statements, on the driver
            await uow.suggestion_lists.put(rows, now=now, due=now + self.max_age)
            await uow.suggestion_lists.drop_orphans(users)  # erased meanwhile: not back
            await uow.commit()
        await self.invalidate(users)

    async def invalidate(self, users: Iterable[int]) -> None:
        await self._cache.invalidate(*(suggestions_key(u) for u in users))


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


class SuggestionRefresher:
    """Keeps the stored lists fresh, off the request path (see the module's doc).

    One round: read the graph events after the refresher's stream position; in one
    transaction move the position (compare-and-set) and make the lists of the users they
    touch due; then recompute due lists, oldest due
    first, as many as the rate budget allows."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        stream: EventStream,
        service: SuggestionService,
        *,
        lease_seconds: float = 15.0,
        per_second: float = 20.0,
        batch: int = 50,
        events_batch: int = 500,
        cpu_share: float | None = None,
        cpu_time: Callable[[], float] = time.thread_time,
    ) -> None:
        """``cpu_share``: the most of this thread's CPU the recomputations may take (the
        budget becomes ``min(per_second, cpu_share / CPU per list)``, the CPU per list
        measured with ``cpu_time`` around each round's recomputation; decision 0048). Meant
        for SQLite, where the friends-of-friends statements run on this very thread
        without suspending; on PostgreSQL the thread serves requests while it waits, so
        the measure would count them (None there: the count budget alone)."""
        self._uow = uow
        self._clock = clock
        self._stream = stream
        self._service = service
        # On standby (another node holds the lease) no round for a third of a lease: it
        # was otherwise woken by each of its relay's publishes to read the position, the
        # events and the due lists, only to fail to take the lease (1.4% of a W1 worker's
        # event loop, decision 0034). It takes over at most that much later.
        self._reader = LeasedReader(
            uow,
            clock,
            stream,
            name=CONSUMER,
            lease_seconds=lease_seconds,
            refused_wait=lease_seconds / 3,
        )
        self._per_second = per_second
        self._cpu_share = cpu_share
        self._cpu_time = cpu_time
        self._cost = 0.0  # CPU seconds per recomputed list (moving average; cpu_share)
        self._batch = batch
        self._events_batch = events_batch
        self.holder = self._reader.holder
        # The rate budget: a bucket of lists to recompute. Under a CPU share its first
        # round, before any cost is measured, is a round's worth, not the whole bucket.
        self._tokens = float(batch if cpu_share is None else min(batch, ROUND))
        self._filled = time.monotonic()
        self._work = asyncio.Event()
        self._busy = 0

    def wake(self, *_args: object) -> None:
        """Events were published to the stream in this process: run a round now."""
        self._work.set()

    async def begin(self) -> None:
        """On a cluster's first start with a refresher, start reading at the stream's end
        (there are no stored lists yet to make due)."""
        await self._reader.begin()

    def _rate(self) -> float:
        """Lists a second: the count budget, or less when ``cpu_share`` of the thread's
        CPU buys fewer at the measured cost per list."""
        if self._cpu_share is None or self._cost <= 0.0:
            return self._per_second
        return min(self._per_second, self._cpu_share / self._cost)

    def _capacity(self) -> float:
        """The bucket's size: ``batch``, or under a CPU share one second's worth of
        lists (at least one), so that a burst blocks the loop no longer than that."""
        if self._cpu_share is None or self._cost <= 0.0:
            return float(self._batch)
        return max(1.0, min(float(self._batch), self._rate()))

    def _budget(self) -> int:
        now = time.monotonic()
        self._tokens = min(self._capacity(), self._tokens + (now - self._filled) * self._rate())
        self._filled = now
        return int(self._tokens)

    async def run_once(self) -> int | None:
        """One round: how many events it read plus lists it recomputed (None: another
        refresher holds the lease)."""
        self._busy += 1
        try:
            return await self._round()
        finally:
            self._busy -= 1

    async def _round(self) -> int | None:
        if self._reader.resting:
            return None
        position = await self._reader.position()
        items = await self._stream.read(after=position, types=TYPES, limit=self._events_batch)
        budget = self._budget()
        now = self._clock()
        due: list[int] = []
        if budget > 0:
            async with self._uow(write=False, driver=True) as uow:
                due = await uow.suggestion_lists.due(now, limit=budget)
        if not items and not due:
            return 0
        if not await self._reader.hold():
            return None
        done = 0
        if items:
            changed: set[int] = set()
            for item in items:
                data = item.event.data
                added, removed = set(data.get("added") or ()), set(data.get("removed") or ())
                if (added | removed) & _CHANGES and not (added <= _HIDES and not removed):
                    pair = (_int(data.get("actor_id")), _int(data.get("other_id")))
                    changed |= {u for u in pair if u is not None}
            async with self._uow(driver=True) as uow:  # (as the first list's write above)
                if not await uow.push.move(CONSUMER, position, items[-1].position):
                    return 0  # another refresher read this batch
                await uow.suggestion_lists.mark_due(sorted(changed), at=now)
                await uow.commit()
            done += len(items)
            if changed and budget > len(due):  # made due just now: at once, budget allowing
                async with self._uow(write=False, driver=True) as uow:
                    due = await uow.suggestion_lists.due(now, limit=budget)
        if due:
            started = self._cpu_time()
            await self._service.refresh(due)
            per_list = max(self._cpu_time() - started, 0.0) / len(due)
            self._cost = per_list if self._cost <= 0.0 else 0.7 * self._cost + 0.3 * per_list
            self._tokens -= len(due)
            done += len(due)
        return done

    async def run(self, *, interval: float = 1.0) -> None:
        """Rounds for ever (a background task): at once when woken, else every
        ``interval`` seconds; while lists are due past the budget, as the budget refills."""
        while True:
            self._work.clear()
            try:
                made = await self.run_once()
            except Unavailable as exc:
                log.warning("suggestions_unavailable", error=exc.message)
                made = 0
            except Exception:
                log.exception("suggestions_failed")
                made = 0
            if made:
                # Behind: wait for a round's worth of budget (decision 0034: a round's
                # fixed cost, and the one read and one write of its lists, are shared by
                # up to ``ROUND`` lists instead of each list taking a round of its own).
                want = min(float(ROUND), self._capacity())
                if self._tokens < want:
                    await asyncio.sleep((want - max(self._tokens, 0.0)) / self._rate())
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._work.wait()
            await asyncio.sleep(0.05)  # let the events of one burst come into one round
