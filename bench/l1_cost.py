"""The node cache's (L1) CPU on W1-shaped reads and invalidations, in process.

    .venv/bin/python -m bench.l1_cost                   # µs per op, by op; best of --repeat
    .venv/bin/python -m bench.l1_cost --profile         # + cProfile's top own-time frames
    .venv/bin/python -m bench.l1_cost --save            # + bench/results/l1-cost-<time>.json

What one worker of W1 asks of its L1 (services/near_cache.py), its look-aside
(services/lookaside.py), profiles and graph cache, and kept bodies, without the network,
the database or the web server: ``GraphService`` over an in-process L2 (cache/memory.py)
and a fake ``HotReads`` answering from a synthetic graph (100,000 users, power-law
degree of mean ~50, rows built once so that the fake costs next to nothing). The op mix
is W1's without suggestions (docs/../WORKLOADS.md): 25% own friends page (F, 5,000 callers
Zipf 0.8), 25% someone's friends page (L, Zipf 0.8 over all users), 15% a profile (P),
5% relationships of 10 (R), 5% mutual friends (M), 10% follow/unfollow (FO), 5% friend
request and accept (FR), 5% profile edit (E). Every write is matched by one of another
node's, heard as its invalidation message (two workers). The L1's clock is virtual:
each op moves it by ``1 / --rate`` s, so ttls expire as they would at that rate whatever
this box's speed.

Before/after a change: run this file against another tree's ``src`` with
``--src /path/to/tree/src`` (it is put first on ``sys.path``).
"""

# ruff: noqa: ARG002

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import cProfile
import gc
import io
import pstats
import random
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any


def _zipf_cdf(n: int, s: float) -> list[float]:
    weights = [1.0 / (k**s) for k in range(1, n + 1)]
    total = sum(weights)
    acc, out = 0.0, []
    for w in weights:
        acc += w / total
        out.append(acc)
    return out


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Link:
    """A bus link that is always current and whose publishes go nowhere."""

    current = True

    def __init__(self) -> None:
        self.published = 0

    def follow(self, _follower: Any) -> None:
        pass

    async def publish(self, _subject: str, _payload: bytes) -> bool:
        self.published += 1
        return True

    def lose(self, _why: str) -> None:
        raise AssertionError("the link is never lost here")


def build(args: argparse.Namespace) -> dict[str, Any]:
    if args.src:
        sys.path.insert(0, args.src)
    from socius.api.rest.friends import _render_list
    from socius.api.rest.users import _render as _render_profile
    from socius.cache.memory import MemoryCache
    from socius.domain.errors import Forbidden, NotFound
    from socius.domain.graph import EdgeRow, EdgeType, ListedUserRow
    from socius.services.graph import GraphService
    from socius.services.graph_cache import GraphCache
    from socius.services.lookaside import LookAside
    from socius.services.near_cache import NearCache
    from socius.services.profiles import ProfileService
    from socius.services.rendered import RenderedBodies

    rng = random.Random(args.seed)
    n = args.users
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    degree = [min(5000, int(25 * (1 - rng.random()) ** -0.5)) for _ in range(n)]
    # The fake's rows are built once, before the collector is told to ignore what exists
    # (as the server does once built): only what the code under test keeps is tracked.
    # A list's rows are built at each read, as a driver's would be.
    friends: dict[int, tuple[int, ...]] = {}

    def friends_of(u: int) -> tuple[int, ...]:
        found = friends.get(u)
        if found is None:
            found = friends[u] = tuple(  # a cheap hash of (u, k): the fake must cost ~nothing
                (u * 2654435761 + k * 40503 + args.seed) % n + 1
                for k in range(min(degree[u - 1], 60))
            )
        return found

    shared_counts: dict[int, dict[EdgeType, int]] = {}

    def counts_of(d: int) -> dict[EdgeType, int]:
        found = shared_counts.get(d)
        if found is None:
            found = shared_counts[d] = {
                EdgeType.FRIEND: d,
                EdgeType.FOLLOWED_BY: 20,
                EdgeType.FOLLOWS: 20,
            }
        return found

    rows = [
        ListedUserRow(
            u,
            f"user{u}",
            f"User {u}",
            "a bio",
            None,
            u % 10 == 0,
            t0 + timedelta(milliseconds=u),
            True,
            counts_of(degree[u - 1]),
        )
        for u in range(n + 1)
    ]
    since = [t0 + timedelta(seconds=k) for k in range(60)]

    def row(u: int) -> ListedUserRow:
        return rows[u]

    def head(u: int) -> list[tuple[EdgeRow, ListedUserRow]]:
        return [
            (EdgeRow(f, 10_000_000 - k, since[k]), rows[f]) for k, f in enumerate(friends_of(u))
        ]

    class Reads:  # a fake: what it is not asked about, it ignores
        available = True

        async def edge_range_with_users(
            self, src: int, type_: EdgeType, *, limit: int, types: Sequence[EdgeType]
        ) -> list[tuple[EdgeRow, ListedUserRow | None]]:
            return head(src)[:limit]  # type: ignore[return-value]

        async def edge_range(
            self, src: int, type_: EdgeType, *, limit: int, before_pos: int | None = None
        ) -> list[EdgeRow]:
            return [e for e, _ in head(src)[:limit]]

        async def mutual_with_users(
            self, a: int, b: int, type_: EdgeType, *, limit: int, before_pos: int | None,
            types: Sequence[EdgeType],
        ) -> list[tuple[EdgeRow, ListedUserRow | None]]:  # fmt: skip
            theirs = set(friends_of(b))
            found: list[tuple[EdgeRow, ListedUserRow | None]] = [
                (e, r) for e, r in head(a) if e.dst in theirs
            ]
            return found[:limit]

        async def blocked(self, src: int, *, limit: int) -> list[int]:
            return []

        async def edge_types_of(self, src: int, *, limit: int) -> list[tuple[int, int]]:
            return [(f, int(EdgeType.FRIEND)) for f in friends_of(src)]

        async def edge_types(self, src: int, dsts: Sequence[int]) -> dict[int, frozenset[EdgeType]]:
            return {d: frozenset() for d in dsts}

        async def listed_users(
            self, user_ids: Sequence[int], types: Sequence[EdgeType]
        ) -> list[ListedUserRow]:
            return [row(u) for u in user_ids]

    clock = _Clock()
    link = _Link()
    l2 = MemoryCache(max_entries=200_000)
    near = NearCache(
        max_entries=args.entries,
        ttl=args.ttl,
        link=link,  # type: ignore[arg-type]
        origin="here",
        local_l2=l2 if args.embedded else None,
        clock=clock,
    )
    reads = Reads()
    profile_la = LookAside(l2, name="profile", near=near)
    graph_la = LookAside(l2, name="graph", near=near)
    unused: Any = None  # no unit of work, clock, ids or delivery: reads and invalidations only
    fake: Any = reads
    profiles = ProfileService(unused, profile_la, reads=fake)
    cache = GraphCache(unused, graph_la, reads=fake)
    graph = GraphService(
        unused, unused, unused, profiles, cache, unused, bodies=RenderedBodies(near)
    )
    callers = rng.sample(range(1, n + 1), 5000)
    return {
        "graph": graph,
        "cache": cache,
        "profiles": profiles,
        "near": near,
        "clock": clock,
        "callers": callers,
        "caller_cdf": _zipf_cdf(len(callers), 0.8),
        "target_cdf": _zipf_cdf(n, 0.8),
        "render_list": _render_list,
        "render_profile": _render_profile,
        "EdgeType": EdgeType,
        "refused": (Forbidden, NotFound),
        "rng": rng,
        "n": n,
    }


OPS = [("F", 25), ("L", 25), ("P", 15), ("R", 5), ("M", 5), ("FO", 10), ("FR", 5), ("E", 5)]


def plan(world: dict[str, Any], count: int) -> list[tuple[str, int, int, list[int]]]:
    rng: random.Random = world["rng"]
    callers: list[int] = world["callers"]
    ccdf, tcdf, n = world["caller_cdf"], world["target_cdf"], int(world["n"])
    names = [name for name, w in OPS for _ in range(w)]

    def caller() -> int:
        return callers[min(bisect.bisect_left(ccdf, rng.random()), len(callers) - 1)]

    def target() -> int:
        return min(bisect.bisect_left(tcdf, rng.random()), n - 1) + 1

    out = []
    for _ in range(count):
        op = rng.choice(names)
        ids = [target() for _ in range(10)] if op == "R" else []
        out.append((op, caller(), target(), ids))
    return out


async def run_ops(world: dict[str, Any], ops: list[tuple[str, int, int, list[int]]], rate: float,
                  by_op: dict[str, list[float]] | None) -> None:  # fmt: skip
    graph, cache, profiles = world["graph"], world["cache"], world["profiles"]
    near, other, clock = world["near"], world["other"], world["clock"]
    render_list, render_profile = world["render_list"], world["render_profile"]
    et = world["EdgeType"]
    step = 1.0 / rate
    refused = world["refused"]
    perf = time.perf_counter  # (wall clock: cheap; the totals are thread CPU time)
    for op, viewer, who, ids in ops:
        clock.now += step
        started = perf()
        if who == viewer:
            who = viewer % world["n"] + 1
        if op == "F":
            await graph.list_own_body(viewer, et.FRIEND, limit=50, cursor=None, render=render_list)
        elif op == "L":
            with contextlib.suppress(refused):
                await graph.list_edges_body(
                    viewer, who, et.FRIEND, limit=50, cursor=None, render=render_list
                )
        elif op == "P":
            with contextlib.suppress(refused):
                await graph.visible_profile_body(viewer, who, render_profile)
        elif op == "R":
            await graph.relationships(viewer, ids)
        elif op == "M":
            with contextlib.suppress(refused):
                await graph.mutual_friends(viewer, who, limit=50, cursor=None)
        else:
            if op == "FO":
                changes = [(viewer, who, {et.FOLLOWS})]
            elif op == "FR":
                changes = [
                    (viewer, who, {et.REQUEST_OUT}),
                    (who, viewer, {et.FRIEND, et.REQUEST_IN}),
                ]
            else:
                changes = []
            for a, b, types in changes:
                await cache.pair_changed(a, b, types)
            if op == "E":
                await profiles.invalidate(viewer, near_only=[f"u:{viewer}"])
            # The other worker's write of the same kind, heard on the bus.
            a, b = who, viewer % world["n"] + 1
            message = other.invalidation(
                [f"r:{a}:{b}", f"r:{b}:{a}", f"s:{a}", f"s:{b}", f"p:{a}", f"p:{b}",
                 f"l:{a}:2", f"l:{b}:3", f"e:{a}", f"e:{b}"]
            )  # fmt: skip
            if message is not None:
                await near.on_message(message)
        if by_op is not None:
            by_op.setdefault(op, []).append(perf() - started)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    world = build(args)
    # ``other`` stands for the other worker: its invalidation messages only.
    from socius.services.near_cache import NearCache

    class _Sink:
        current = True

        def follow(self, _f: Any) -> None:
            pass

    world["other"] = NearCache(max_entries=1, ttl=1, link=_Sink(), origin="there")  # type: ignore[arg-type]
    # The server's collector settings (bootstrap.tune_gc): what exists once built is frozen,
    # young collections every 20,000 allocations; the time spent collecting is counted.
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(20_000, gen1, gen2)
    collecting = [0.0, 0.0]

    def on_gc(phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            collecting[1] = time.thread_time()
        else:
            collecting[0] += time.thread_time() - collecting[1]

    gc.callbacks.append(on_gc)
    await run_ops(world, plan(world, args.warmup), args.rate, None)
    best: dict[str, float] = {}
    totals: list[float] = []
    gc_share: list[float] = []
    for _ in range(args.repeat):
        ops = plan(world, args.ops)
        by_op: dict[str, list[float]] = {}
        collecting[0] = 0.0
        started = time.thread_time()
        await run_ops(world, ops, args.rate, by_op)
        totals.append((time.thread_time() - started) / len(ops) * 1e6)
        gc_share.append(collecting[0] / (time.thread_time() - started))
        for op, times in by_op.items():
            mean = sum(times) / len(times) * 1e6
            best[op] = min(best.get(op, mean), mean)
    result: dict[str, Any] = {
        "us_per_op_best": round(min(totals), 1),
        "us_per_op_all": [round(t, 1) for t in totals],
        "us_per_op_by_op_best": {op: round(best[op], 1) for op, _ in OPS if op in best},
        "gc_share": [round(g, 3) for g in gc_share],
        "l1_entries": len(world["near"]),
        "l1_hits": world["near"].hits,
        "l1_misses": world["near"].misses,
    }
    if args.profile:
        ops = plan(world, args.ops)
        prof = cProfile.Profile()
        prof.enable()
        await run_ops(world, ops, args.rate, None)
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", default="", help="a tree's src/ to measure instead of this one")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=50_000, help="L1 max entries")
    parser.add_argument("--ttl", type=float, default=10.0, help="L1 ttl (s, virtual clock)")
    parser.add_argument("--rate", type=float, default=1000.0, help="ops/s of the virtual clock")
    parser.add_argument("--embedded", action="store_true", help="L2 is this process's own")
    parser.add_argument("--warmup", type=int, default=20_000)
    parser.add_argument("--ops", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--save", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    if args.save:
        from bench.harness.scratch import save_result

        save_result("l1_cost", "l1-cost", "in-process", args, result)
    else:
        import json

        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
