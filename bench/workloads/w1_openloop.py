"""W1 at a constant arrival rate: the same slot and token files as w1.lua, sent by the
harness's open-loop generator (bench/harness/openloop.py: request i starts at t0 + i/rate
whatever the server does, its latency counts from that scheduled start, so there is no
coordinated omission) over keep-alive connections (bench/harness/rawhttp.py).

Each slot becomes the request w1.lua would send for it (w1_mix.ROUTES), friend requests
included: an FR slot sends the accept of an earlier friend request that was answered 2xx,
if one is waiting, else a new friend request (whose accept then waits for a later FR slot).
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

from bench.harness.openloop import OpenLoopResult, open_loop
from bench.harness.rawhttp import RawHttpPool
from bench.workloads.w1_mix import route

__all__ = ["run_open_loop"]

_JSON = "application/json"


class _Mix:
    def __init__(self, tokens: Path, slots: Path) -> None:
        self.uids: list[str] = []
        self.auth: list[str] = []
        for line in tokens.read_text().splitlines():
            uid, _, token = line.partition(" ")
            if token:
                self.uids.append(uid)
                self.auth.append(f"Bearer {token}")
        self.slots = [ln.split(" ") for ln in slots.read_text().splitlines() if ln]
        self.accepts: deque[tuple[str, int]] = deque()  # (path, caller index) to send

    def request(self, i: int) -> tuple[str, str, str, int, str | None, tuple[str, int] | None]:
        """(op, method, path, caller index, JSON body, accept to queue on a 2xx)."""
        slot = self.slots[i % len(self.slots)]
        op, k = slot[0], int(slot[1]) - 1
        arg = slot[2] if len(slot) > 2 else ""
        if op != "FR":
            method, path, body = route(op, arg, i)
            return op, method, path, k, body or None, None
        if self.accepts:
            path, other = self.accepts.popleft()
            return "FA", "POST", path, other, None, None
        other = int(arg) - 1
        body = f'{{"user_id":"{self.uids[other]}"}}'
        accept = (f"/v1/friends/requests/{self.uids[k]}/accept", other)
        return op, "POST", "/v1/friends/requests", k, body, accept


async def run_open_loop(
    base_url: str, tokens: Path, slots: Path, *, rate: float, duration: float, connections: int
) -> tuple[OpenLoopResult, dict[str, dict[str, int]]]:
    """Offer the W1 mix at `rate` requests/s for `duration` s; the result and per-op counts
    (sent, failed) like w1.lua's."""
    mix = _Mix(tokens, slots)
    pool = RawHttpPool(base_url, size=connections, timeout=10.0)
    sent: dict[str, int] = {}
    failed: dict[str, int] = {}

    async def call(i: int) -> str | None:
        op, method, path, k, body, accept = mix.request(i)
        sent[op] = sent.get(op, 0) + 1
        headers = {"Authorization": mix.auth[k]}
        if body is not None:
            headers["Content-Type"] = _JSON
        status, _ = await pool.request(method, path, (body or "").encode(), headers)
        if 200 <= status < 300:
            if accept is not None:
                mix.accepts.append(accept)
            return None
        failed[op] = failed.get(op, 0) + 1
        return f"{op} {status}"

    try:
        result = await open_loop(call, rate=rate, duration=duration, drain_timeout=30.0)
    finally:
        await pool.close()
    return result, {"sent": sent, "failed": failed}
