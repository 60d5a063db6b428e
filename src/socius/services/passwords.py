"""Password hashing (argon2id) off the event loop, and the password policy."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import TypeVar

from argon2 import PasswordHasher as _Argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from socius.domain.errors import InvalidInput
from socius.domain.users import PASSWORD_MAX, PASSWORD_MIN

__all__ = ["PasswordHasher", "check_password_policy"]

_R = TypeVar("_R")


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class PasswordHasher:
    """argon2id with configurable cost; hashing runs in worker threads of its own.

    At most ``threads`` hashes run at once (default: the cores this process may use); the
    others wait their turn in order. Per process, not the node's cores divided among its
    workers: a keep-alive connection stays on one worker, so a worker may get most of the
    logins while another has none, and one thread there would leave a core idle while
    logins queue. On the default executor up to cores + 4 hashes (64 MiB each by default)
    shared the cores at once: each of them, and the event loop beside them, ran that many
    times slower, so under a burst every login waited for all of them (decision 0036).
    Hashing also no longer takes the default executor's threads from the rest of the
    process (file and image work)."""

    def __init__(
        self, *, memory_kib: int, time_cost: int, parallelism: int, threads: int | None = None
    ) -> None:
        self._argon = _Argon2(memory_cost=memory_kib, time_cost=time_cost, parallelism=parallelism)
        self._dummy_hash: str | None = None
        self._threads = threads or _cores()
        self._executor: ThreadPoolExecutor | None = None  # made on first use (after a fork)

    async def _run(self, call: Callable[[], _R]) -> _R:
        executor = self._executor
        if executor is None:
            executor = self._executor = ThreadPoolExecutor(
                max_workers=self._threads, thread_name_prefix="argon2"
            )
        return await asyncio.get_running_loop().run_in_executor(executor, call)

    def close(self) -> None:
        """Let the hashing threads end once their current hash is done (at shutdown)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def hash(self, password: str) -> str:
        return await self._run(functools.partial(self._argon.hash, password))

    async def verify(self, password_hash: str, password: str) -> bool:
        return await self._run(functools.partial(self._verify, password_hash, password))

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._argon.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._argon.check_needs_rehash(password_hash)

    async def burn(self, password: str) -> None:
        """Spend the time of a real verification: unknown users answer as slowly as known ones."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash("socius-dummy-password")
        await self.verify(self._dummy_hash, password)


@functools.cache
def _common_passwords() -> frozenset[str]:
    text = resources.files("socius.services").joinpath("common_passwords.txt").read_text()
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and line[0] != "#"
    )


def check_password_policy(password: str, *, username: str = "") -> None:
    """Raise InvalidInput for a password too short, too long, common or the username."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidInput(
            f"password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters",
            code="invalid_password",
            details={"field": "password"},
        )
    lowered = password.lower()
    if (
        lowered in _common_passwords()
        or (username and username.lower() in lowered)
        or len(set(password)) < 3
    ):
        raise InvalidInput(
            "password is too easy to guess", code="weak_password", details={"field": "password"}
        )
