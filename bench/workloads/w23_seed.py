"""Seeding shared by W2 (chat delivery) and W3 (connections).

Users and sessions go straight into the database (no registration, so no argon2 per
account): the schema is created first by the real migrations, rows are written with
SQLAlchemy core through ``socius.storage.engine.make_engine`` on the ``socius.storage.tables``
definitions. Every seeded user shares ONE argon2id hash of a random password nobody keeps
(nobody logs in). Access tokens are issued with the server's own signing key
(``AccessTokens.issue``, key created in the bench database by ``load_keys``), exactly as a
login would issue them; W2/W3 never measure login.

Conversations are created through the HTTP API (``AsyncClient.open_direct`` /
``create_group``) on the measurement server, so they are exactly what the app makes
(membership rows, ``conversation.updated`` / ``member.added`` events in the logs).
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.harness.stack import Stack
from socius.bootstrap import build
from socius.client import ApiError, AsyncClient
from socius.domain.ids import IdGenerator
from socius.services.passwords import PasswordHasher
from socius.settings import load_settings
from socius.storage.engine import make_engine
from socius.storage.migrate import upgrade
from socius.storage.tables import sessions, users

__all__ = [
    "Topology",
    "create_conversations",
    "direct_pairs",
    "group_members",
    "seed_users",
]

SEED_NODE = 1001  # the node bits of seeded ids (servers pick their own)
BATCH = 5_000
TOKEN_TTL_S = 7200  # access tokens of the bench users (SOCIUS_ACCESS_TOKEN_TTL_SECONDS)
TOKEN_ENV = {"SOCIUS_ACCESS_TOKEN_TTL_SECONDS": str(TOKEN_TTL_S)}


@dataclass
class Seeded:
    user_ids: list[int]
    tokens: list[str]
    seconds: float


async def seed_users(stack: Stack, count: int, prefix: str) -> Seeded:
    """``count`` active users with one live session each; their ids and access tokens."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    env = stack.settings_env() | TOKEN_ENV
    settings = load_settings(environ=env)
    await upgrade(settings.effective_database_url)
    hasher = PasswordHasher(memory_kib=65536, time_cost=3, parallelism=1)
    password_hash = await hasher.hash(secrets.token_urlsafe(24))
    ids = IdGenerator(SEED_NODE)
    user_ids = [ids.next_id() for _ in range(count)]
    session_ids = [ids.next_id() for _ in range(count)]
    now = datetime.now(UTC)
    expires = now + timedelta(days=30)
    engine = make_engine(settings.effective_database_url, pool_size=2)
    try:
        for start in range(0, count, BATCH):
            part = range(start, min(start + BATCH, count))
            async with engine.begin() as conn:
                await conn.execute(
                    users.insert(),
                    [
                        {
                            "id": user_ids[i],
                            "username": f"{prefix}{i:06d}",
                            "email": None,
                            "display_name": f"{prefix.upper()} user {i}",
                            "bio": "",
                            "avatar_url": None,
                            "is_private": False,
                            "dm_policy": "everyone",
                            "password_hash": password_hash,
                            "status": "active",
                            "is_admin": False,
                            "settings": {},
                            "created_at": now,
                            "updated_at": now,
                        }
                        for i in part
                    ],
                )
                await conn.execute(
                    sessions.insert(),
                    [
                        {
                            "id": session_ids[i],
                            "user_id": user_ids[i],
                            "created_at": now,
                            "last_used_at": now,
                            "expires_at": expires,
                            "revoked_at": None,
                            "user_agent": f"{prefix}-bench",
                            "ip": "127.0.0.1",
                        }
                        for i in part
                    ],
                )
    finally:
        await engine.dispose()
    wiring = build(settings)
    try:
        await wiring.container.tokens.load_keys()  # creates the key the server will use
        issue = wiring.container.tokens.issue
        tokens = [issue(u, s) for u, s in zip(user_ids, session_ids, strict=True)]
    finally:
        await wiring.cache.close()
        await wiring.database.dispose()
    return Seeded(user_ids, tokens, loop.time() - t0)


# -- who talks to whom ------------------------------------------------------------------


def direct_pairs(n: int, per_user: int, rng: random.Random) -> list[tuple[int, int]]:
    """A random ``per_user``-regular graph on n users (per_user even, n > per_user + 1):
    users in a random cycle order, each joined to the per_user/2 next ones on each side."""
    if per_user % 2 or n <= per_user + 1:
        raise ValueError("direct conversations per user must be even and < users - 1")
    order = list(range(n))
    rng.shuffle(order)
    return [(order[i], order[(i + k) % n]) for i in range(n) for k in range(1, per_user // 2 + 1)]


def group_members(n: int, per_user: int, lo: int, hi: int, rng: random.Random) -> list[list[int]]:
    """Groups of lo..hi members (uniform) so that every user is in exactly ``per_user``."""
    slots = [u for u in range(n) for _ in range(per_user)]
    rng.shuffle(slots)
    groups: list[list[int]] = []
    i = 0
    while i < len(slots):
        size = rng.randint(lo, hi)
        if len(slots) - i - size < lo:  # the rest would be too small: take it all
            size = len(slots) - i if len(slots) - i <= hi else len(slots) - i - lo
        groups.append(slots[i : i + size])
        i += size
    # A user twice in one group: swap one copy with a slot of another group.
    for g in groups:
        seen: set[int] = set()
        for k, u in enumerate(g):
            if u not in seen:
                seen.add(u)
                continue
            for _ in range(10_000):
                other = rng.choice(groups)
                j = rng.randrange(len(other))
                v = other[j]
                if other is not g and v not in g and u not in other:
                    g[k], other[j] = v, u
                    seen.add(v)
                    break
            else:
                raise RuntimeError("could not de-duplicate group members")
    return groups


@dataclass
class Topology:
    """Conversations by id, with their members (user indexes)."""

    members: dict[str, list[int]] = field(default_factory=dict)
    kind: dict[str, str] = field(default_factory=dict)
    by_user: dict[int, list[str]] = field(default_factory=dict)

    def add(self, conversation_id: str, kind: str, members: Sequence[int]) -> None:
        self.members[conversation_id] = list(members)
        self.kind[conversation_id] = kind
        for u in members:
            self.by_user.setdefault(u, []).append(conversation_id)

    def group_sizes(self) -> list[int]:
        return sorted(len(m) for c, m in self.members.items() if self.kind[c] == "group")


async def create_conversations(
    base_url: str,
    user_ids: list[int],
    tokens: list[str],
    pairs: list[tuple[int, int]],
    groups: list[list[int]],
    *,
    concurrency: int = 32,
    progress: Callable[[int], None] = lambda _n: None,
) -> Topology:
    """Open the direct conversations and create the groups through the API."""
    topo = Topology()
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120) as http:

        async def retry(make: Callable[[], Awaitable[Any]]) -> Any:
            for attempt in range(5):
                try:
                    return await make()
                except (httpx.TransportError, ApiError) as exc:
                    if isinstance(exc, ApiError) and exc.status < 500 and exc.status != 429:
                        raise
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.5 * (attempt + 1))
            raise AssertionError("unreachable")

        async def direct(a: int, b: int) -> None:
            async with gate:
                client = AsyncClient(base_url, http=http, access_token=tokens[a])
                conv = await retry(lambda: client.open_direct(str(user_ids[b])))
            topo.add(conv.id, "direct", (a, b))
            progress(1)

        async def group(k: int, members: list[int]) -> None:
            owner, others = members[0], members[1:]
            async with gate:
                client = AsyncClient(base_url, http=http, access_token=tokens[owner])
                conv = await retry(
                    lambda: client.create_group(
                        f"bench group {k}", [str(user_ids[u]) for u in others]
                    )
                )
            topo.add(conv.id, "group", members)
            progress(1)

        await asyncio.gather(
            *(direct(a, b) for a, b in pairs), *(group(k, g) for k, g in enumerate(groups))
        )
    return topo
