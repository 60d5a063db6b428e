"""Password hashes run on the hasher's own threads, at most ``threads`` at once (decision
0036): a burst of logins queues in order instead of sharing the cores many ways."""

from __future__ import annotations

import asyncio
import threading

from socius.services.passwords import PasswordHasher, _cores


async def test_hashes_run_on_their_own_threads_at_most_threads_at_once() -> None:
    hasher = PasswordHasher(memory_kib=1024, time_cost=1, parallelism=1, threads=2)
    running = peak = 0
    names: set[str] = set()
    lock = threading.Lock()
    verify = hasher._verify

    def counted(password_hash: str, password: str) -> bool:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            names.add(threading.current_thread().name)
        try:
            return verify(password_hash, password)
        finally:
            with lock:
                running -= 1

    hasher._verify = counted  # type: ignore[method-assign]
    stored = await hasher.hash("a-Secret-pw-1")
    results = await asyncio.gather(*(hasher.verify(stored, "a-Secret-pw-1") for _ in range(8)))
    assert all(results)
    assert not await hasher.verify(stored, "wrong-pw-123")
    assert peak <= 2
    assert names
    assert all(name.startswith("argon2") for name in names)


async def test_close_ends_the_threads_and_a_later_hash_still_works() -> None:
    hasher = PasswordHasher(memory_kib=1024, time_cost=1, parallelism=1, threads=1)
    stored = await hasher.hash("a-Secret-pw-1")
    hasher.close()
    hasher.close()  # twice is fine
    assert await hasher.verify(stored, "a-Secret-pw-1")
    hasher.close()


def test_by_default_one_thread_per_core() -> None:
    assert PasswordHasher(memory_kib=1024, time_cost=1, parallelism=1)._threads == _cores()
