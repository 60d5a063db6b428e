"""W1 request mix: the callers, their access tokens, and the request "slots" fed to wrk.

Callers: ``SESSIONS`` (5,000) users drawn at random (fixed seed) are the active users. Each
gets a ``sessions`` row inserted straight into the database, and an access token issued by
``socius.services.tokens.AccessTokens`` on the same database (``load_keys()`` then
``issue(user_id, session_id)``): the very key the server signs and verifies with, no
argon2, no HTTP. Which caller sends a request: Zipf(0.8) over the 5,000 (random ranks).

Targets (the {id} of a request): Zipf(0.8) over all users, ranks a random permutation of
the users (popularity uncorrelated with degree).

The mix, in shares of HTTP requests (docs/workloads.md, W1):

| op | share | request |
|---|---|---|
| F  | 25%  | GET /v1/friends?limit=50 (own list) |
| L  | 25%  | GET /v1/users/{id}/friends?limit=50, {id} public, a friend, or the caller |
| P  | 15%  | GET /v1/users/{id} |
| R  | 5%   | GET /v1/relationships?ids= (10 ids) |
| M  | 5%   | GET /v1/users/{id}/mutual-friends?limit=50, {id} public or a friend, not self |
| S  | 5%   | GET /v1/friends/suggestions |
| FO | 5%   | POST /v1/users/{id}/follow |
| UF | 5%   | DELETE /v1/users/{id}/follow ({id}: one the caller follows in the seed) |
| FR | 5%   | friend request, then accept by the other side (see w1.lua) |
| E  | 5%   | PATCH /v1/me {"bio": ...} |

Friend requests go between two callers (the other side needs a token to accept) that
are not friends, and each unordered pair is used once per bench invocation, so every
request/accept pair really creates a friendship. Lists are only asked of users the caller
may see (403 private_account would be an error), so every expected answer is a 2xx.

Slot file: one line per request, ``<op> <caller index> [<arg>]``; wrk cycles through it
(a fresh file, from a fresh seed, per run; sized so that it does not wrap at the target
rate). Token file: ``<user id> <access token>`` per caller, line k = caller index k.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.workloads.w1_seed import Graph

__all__ = ["MIX", "ROUTES", "Callers", "choose_callers", "route", "write_routes", "write_slots"]

SESSIONS = 5_000
ZIPF_S = 0.8
RELATIONSHIP_IDS = 10
MIX: dict[str, float] = {
    "F": 0.25,
    "L": 0.25,
    "P": 0.15,
    "R": 0.05,
    "M": 0.05,
    "S": 0.05,
    "FO": 0.05,
    "UF": 0.05,
    "FR": 0.05,
    "E": 0.05,
}
assert abs(sum(MIX.values()) - 1.0) < 1e-9

#: The request of each op but FR (whose accept follows its request's answer: w1.lua and
#: w1_openloop.py keep that state): method, path, JSON body. ``{arg}`` is the slot's
#: argument, ``{n}`` the request's serial number. w1.lua reads this table from the file
#: ``write_routes`` writes, w1_openloop.py from here: one definition of the mix's requests.
ROUTES: dict[str, tuple[str, str, str]] = {
    "F": ("GET", "/v1/friends?limit=50", ""),
    "L": ("GET", "/v1/users/{arg}/friends?limit=50", ""),
    "P": ("GET", "/v1/users/{arg}", ""),
    "R": ("GET", "/v1/relationships?ids={arg}", ""),
    "M": ("GET", "/v1/users/{arg}/mutual-friends?limit=50", ""),
    "S": ("GET", "/v1/friends/suggestions", ""),
    "FO": ("POST", "/v1/users/{arg}/follow", ""),
    "UF": ("DELETE", "/v1/users/{arg}/follow", ""),
    "E": ("PATCH", "/v1/me", '{"bio":"w1 bench bio {n}"}'),
}
assert set(ROUTES) | {"FR"} == set(MIX)


def route(op: str, arg: str, n: int) -> tuple[str, str, str]:
    """(method, path, body) of a request of ``op`` (not FR) for a slot's ``arg``."""
    method, path, body = ROUTES[op]
    return method, path.replace("{arg}", arg), body.replace("{n}", str(n))


def write_routes(path: Path) -> Path:
    """The ROUTES table for w1.lua: ``<op>\t<method>\t<path>\t<body>`` per line."""
    path.write_text("".join(f"{op}\t{m}\t{p}\t{b}\n" for op, (m, p, b) in ROUTES.items()))
    return path


def _zipf_cdf(n: int, s: float) -> Any:
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** s
    return np.cumsum(w / w.sum())


@dataclass
class Callers:
    """The active users: index k -> user index in the graph, and their Zipf sampler."""

    users: Any  # int64[k]: graph index of caller k
    caller_rank: Any  # permutation: rank -> caller k
    caller_cdf: Any
    target_rank: Any  # permutation: rank -> graph index
    target_cdf: Any
    used_pairs: set[tuple[int, int]] = field(default_factory=set)

    def callers(self, rng: np.random.Generator, size: int) -> Any:
        r = np.searchsorted(self.caller_cdf, rng.random(size), side="right")
        return self.caller_rank[np.minimum(r, len(self.caller_rank) - 1)]

    def targets(self, rng: np.random.Generator, size: int) -> Any:
        r = np.searchsorted(self.target_cdf, rng.random(size), side="right")
        return self.target_rank[np.minimum(r, len(self.target_rank) - 1)]


def choose_callers(g: Graph, seed: int, count: int = SESSIONS) -> Callers:
    rng = np.random.default_rng(seed)
    count = min(count, g.n)
    users = np.sort(rng.choice(g.n, size=count, replace=False))
    return Callers(
        users=users,
        caller_rank=rng.permutation(count),
        caller_cdf=_zipf_cdf(count, ZIPF_S),
        target_rank=rng.permutation(g.n),
        target_cdf=_zipf_cdf(g.n, ZIPF_S),
    )


def _visible_targets(
    g: Graph, c: Callers, rng: np.random.Generator, viewers: Any, *, allow_self: bool
) -> Any:
    """A Zipf target per viewer whose lists that viewer may see (resampled until so)."""
    out = c.targets(rng, len(viewers))
    todo = np.arange(len(viewers))
    for _ in range(100):
        t, v = out[todo], viewers[todo]
        ok = ~g.private[t] | g.are_friends(v, t)
        ok = (ok | (t == v)) if allow_self else (ok & (t != v))
        todo = todo[~ok]
        if len(todo) == 0:
            return out
        out[todo] = c.targets(rng, len(todo))
    raise RuntimeError("could not find visible targets")


def write_slots(
    g: Graph,
    c: Callers,
    path: Path,
    *,
    count: int,
    seed: int,
    mix: dict[str, float] | None = None,
) -> dict[str, int]:
    """Write `count` request slots to `path` (`mix`: shares by op, default MIX); returns
    how many of each op."""
    rng = np.random.default_rng(seed)
    mix = MIX if mix is None else mix
    names = list(MIX)
    shares = np.array([mix.get(k, 0.0) for k in names])
    ops = rng.choice(len(names), size=count, p=shares / shares.sum())
    callers = c.callers(rng, count)  # caller index k
    viewer = c.users[callers]  # graph index
    ids = g.ids
    args: list[str] = [""] * count

    def fill(op: str, values: list[str]) -> None:
        for i, v in zip(np.nonzero(ops == names.index(op))[0].tolist(), values, strict=True):
            args[i] = v

    def where(op: str) -> Any:
        return np.nonzero(ops == names.index(op))[0]

    sel = where("L")
    fill("L", ids[_visible_targets(g, c, rng, viewer[sel], allow_self=True)].astype(str).tolist())
    sel = where("M")
    fill("M", ids[_visible_targets(g, c, rng, viewer[sel], allow_self=False)].astype(str).tolist())
    sel = where("P")
    fill("P", ids[c.targets(rng, len(sel))].astype(str).tolist())
    sel = where("R")
    many = (
        ids[c.targets(rng, len(sel) * RELATIONSHIP_IDS)].astype(str).reshape(-1, RELATIONSHIP_IDS)
    )
    fill("R", [",".join(row) for row in many.tolist()])

    sel = where("FO")
    t = c.targets(rng, len(sel))
    clash = t == viewer[sel]
    while clash.any():
        t[clash] = c.targets(rng, int(clash.sum()))
        clash = t == viewer[sel]
    fill("FO", ids[t].astype(str).tolist())

    sel = where("UF")
    values = []
    for v in viewer[sel].tolist():
        lo, hi = int(g.follow_ptr[v]), int(g.follow_ptr[v + 1])
        if hi > lo:
            values.append(str(ids[g.follow_dst[rng.integers(lo, hi)]]))
        else:  # follows nobody: unfollowing someone is a no-op, still a 200
            other = int(c.targets(rng, 1)[0])
            values.append(str(ids[other if other != v else (v + 1) % g.n]))
    fill("UF", values)

    # Friend requests: between two callers who are not friends; each pair used once. The
    # Zipf-chosen caller first; when their fresh pairs run short, another caller at random;
    # as a last resort a pair used before (then both requests are idempotent no-ops, 200).
    sel = where("FR")
    values = []
    n_callers = len(c.users)
    reused = 0
    fr_callers = callers[sel]
    for j, k in enumerate(fr_callers.tolist()):
        found = None
        for attempt in range(400):
            if attempt and attempt % 20 == 0:
                k = int(rng.integers(0, n_callers))
            a = int(c.users[k])
            other = int(rng.integers(0, n_callers))
            b = int(c.users[other])
            pair = (min(a, b), max(a, b))
            if a != b and pair not in c.used_pairs and not bool(g.are_friends([a], [b])[0]):
                found = (k, other)
                c.used_pairs.add(pair)
                break
        if found is None:
            reused += 1
            other = (k + 1) % n_callers
            found = (k, other)
        fr_callers[j] = found[0]
        values.append(str(found[1] + 1))  # 1-based, like the caller column
    callers[sel] = fr_callers
    fill("FR", values)

    with path.open("w") as f:
        for op_i, k, arg in zip(ops.tolist(), callers.tolist(), args, strict=True):
            op = names[op_i]
            f.write(f"{op} {k + 1} {arg}\n" if arg else f"{op} {k + 1}\n")
    counts = {name: int((ops == i).sum()) for i, name in enumerate(names)}
    counts["FR_pairs_reused"] = reused
    return counts
