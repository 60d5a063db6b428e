"""The L1 against a plain model of what it may serve (decision 0054): random stores,
reads, drops and link losses on a clock of its own. Unbounded, it answers exactly as the
model; bounded, it holds at most its bound and serves nothing the model would not."""

from __future__ import annotations

import random
from typing import Any

import pytest

from socius.services.near_cache import MISS, NearCache

TTL = 10.0
HORIZON = 30.0  # a fill's ticket older than this stores nothing; a built entry lives no longer


class _Link:
    current = True

    def follow(self, _follower: object) -> None:
        pass


class Model:
    """Every drop ever made, and what was stored when: the rules in their plainest form."""

    def __init__(self) -> None:
        self.gen = 0
        self.cleared = 0
        self.drops: list[tuple[int, set[str]]] = []
        self.held: dict[str, tuple[Any, float, frozenset[str], int]] = {}

    def _dropped_after(self, gen: int, keys: set[str]) -> bool:
        return any(g > gen and keys & dropped for g, dropped in self.drops)

    def get(self, key: str, now: float) -> Any:
        held = self.held.get(key)
        if held is None:
            return MISS
        value, expires, deps, gen = held
        if expires < now or (deps and self._dropped_after(gen, set(deps))):
            del self.held[key]
            return MISS
        return value

    def put(
        self, key: str, value: Any, ticket: tuple[int, float], deps: list[str], now: float
    ) -> bool:
        gen, began = ticket
        if gen < self.cleared or now - began > HORIZON:
            return False
        if self._dropped_after(gen, {key, *deps}):
            return False
        expires = min(now + TTL, began + HORIZON) if deps else now + TTL
        self.held[key] = (value, expires, frozenset(deps), self.gen)
        return True

    def drop(self, keys: list[str]) -> None:
        self.gen += 1
        self.drops.append((self.gen, set(keys)))
        for key in keys:
            self.held.pop(key, None)

    def lost(self) -> None:
        self.gen += 1
        self.cleared = self.gen
        self.held.clear()


@pytest.mark.parametrize("bound", [1_000_000, 3, 8, 20])
def test_the_l1_serves_what_the_model_serves(bound: int) -> None:
    for seed in range(60):
        _run(random.Random(seed), bound)


def _run(rnd: random.Random, bound: int) -> None:
    keys = [f"p:{i}" for i in range(30)] + [f"b:{i}" for i in range(10)]
    now = [0.0]
    link: Any = _Link()
    near = NearCache(max_entries=bound, ttl=TTL, link=link, origin="x", clock=lambda: now[0])
    model = Model()
    tickets: list[tuple[tuple[int, float], tuple[int, float]]] = []
    for _ in range(1500):
        now[0] += rnd.random() * 0.5
        op = rnd.random()
        if op < 0.15 or not tickets:
            tickets = [*tickets[-19:], (near.begin(), (model.gen, now[0]))]
        elif op < 0.35:
            ticket, modelled = rnd.choice(tickets)
            key = rnd.choice(keys)
            deps = rnd.sample(keys[:30], rnd.randint(0, 4)) if key[0] == "b" else []
            value = rnd.random()
            assert near.put(key, value, ticket, deps) == model.put(
                key, value, modelled, deps, now[0]
            )
        elif op < 0.45:
            ticket, modelled = rnd.choice(tickets)
            items = [(k, rnd.random()) for k in rnd.sample(keys, 5)]
            stored = near.put_many(items, ticket)
            assert stored == sum(model.put(k, v, modelled, [], now[0]) for k, v in items)
        elif op < 0.6:
            dropped = rnd.sample(keys, rnd.randint(1, 3))
            near.drop(dropped)
            model.drop(dropped)
        elif op < 0.62:
            near.lost()
            model.lost()
        else:
            read = rnd.sample(keys, rnd.randint(1, 6))
            got = near.get_many(read) if len(read) > 1 else [near.get(read[0])]
            expected = [model.get(k, now[0]) for k in read]
            for value, want in zip(got, expected, strict=True):
                # Bounded, a value may have been evicted; never one the model would not
                # serve.
                assert value == want or (bound < 1_000_000 and value is MISS)
        assert len(near) <= bound
