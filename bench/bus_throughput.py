"""Bus micro-benchmark: publish -> deliver throughput and latency across two bus instances.

    .venv/bin/python bench/bus_throughput.py --bus nats --messages 100000
    .venv/bin/python bench/bus_throughput.py --bus redis --messages 100000 --publishers 32
    .venv/bin/python bench/bus_throughput.py --bus memory --messages 100000 --rate 20000

Node B subscribes to ``--subjects`` subjects; node A publishes round-robin over them, as
fast as it can (closed loop) or at ``--rate`` messages per second (open loop: latency
without self-made queueing). Both nodes live in this one process and event loop, so the
figures include each other's CPU. Each payload carries its send time and a per-subject
sequence number: the run reports lost and out-of-order deliveries (both must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import statistics
import struct
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from socius.bus.memory import MemoryBroker, MemoryBus
from socius.bus.nats import NatsBus
from socius.bus.redis import RedisBus

_HEADER = struct.Struct("!qI")  # send time (perf_counter_ns), per-subject sequence


@dataclass
class Result:
    bus: str
    messages: int
    payload_bytes: int
    subjects: int
    publishers: int
    rate: float
    publish_per_s: float
    deliver_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    lost: int
    out_of_order: int


class Receiver:
    def __init__(self, subjects: int) -> None:
        self.subjects = subjects
        self.reset(0)

    def reset(self, expected: int) -> None:
        self.expected = expected
        self.latencies_ns: list[int] = []
        self.last_seq = [-1] * self.subjects
        self.out_of_order = 0
        self.last_at = 0
        self.done = asyncio.Event()

    def handler(self, index: int) -> Any:
        async def handle(payload: bytes) -> None:
            now = time.perf_counter_ns()
            sent, seq = _HEADER.unpack_from(payload)
            self.latencies_ns.append(now - sent)
            if seq <= self.last_seq[index]:
                self.out_of_order += 1
            self.last_seq[index] = seq
            self.last_at = now
            if len(self.latencies_ns) >= self.expected:
                self.done.set()

        return handle


def make_bus(kind: str, args: argparse.Namespace, prefix: str, broker: MemoryBroker) -> Any:
    if kind == "nats":
        return NatsBus(args.nats_url, prefix=prefix)
    if kind == "redis":
        return RedisBus(args.redis_url, prefix=prefix)
    return MemoryBus(broker=broker, max_pending=10**9)


async def publish_all(
    bus: Any, args: argparse.Namespace, count: int, subjects: list[str], padding: bytes
) -> None:
    """``count`` messages, split over ``args.publishers`` tasks; each task owns a disjoint
    set of subjects, so per-subject order is the publish order."""
    seqs = [0] * len(subjects)
    per_task_rate = args.rate / args.publishers if args.rate else 0.0

    async def run(task: int) -> None:
        owned = list(range(task, len(subjects), args.publishers))
        share = count // args.publishers + (1 if task < count % args.publishers else 0)
        start = time.perf_counter()
        for i in range(share):
            if per_task_rate:
                delay = start + i / per_task_rate - time.perf_counter()
                if delay > 0.001:
                    await asyncio.sleep(delay)
            index = owned[i % len(owned)]
            seq = seqs[index]
            seqs[index] = seq + 1
            header = _HEADER.pack(time.perf_counter_ns(), seq)
            await bus.publish(subjects[index], header + padding)

    await asyncio.gather(*(run(t) for t in range(args.publishers)))
    if hasattr(bus, "flush"):
        await bus.flush()


async def measure(args: argparse.Namespace) -> Result:
    prefix = f"socius-bench.{secrets.token_hex(4)}."
    broker = MemoryBroker()
    a, b = make_bus(args.bus, args, prefix, broker), make_bus(args.bus, args, prefix, broker)
    await a.start()
    await b.start()
    try:
        subjects = [f"user.{i}" for i in range(args.subjects)]
        padding = b"x" * max(0, args.size - _HEADER.size)
        warmup = min(1000, args.messages // 10)

        receiver = Receiver(args.subjects)
        receiver.reset(warmup)
        for index, subject in enumerate(subjects):
            await b.subscribe(subject, receiver.handler(index))
        await publish_all(a, args, warmup, subjects, padding)
        await asyncio.wait_for(receiver.done.wait(), args.wait)

        receiver.reset(args.messages)  # the measured run; sequences restart too
        started = time.perf_counter_ns()
        await publish_all(a, args, args.messages, subjects, padding)
        published = time.perf_counter_ns()
        with contextlib.suppress(TimeoutError):  # the losses are reported
            await asyncio.wait_for(receiver.done.wait(), args.wait)
        got = len(receiver.latencies_ns)
        lat = sorted(receiver.latencies_ns) or [0]
        ms = 1e-6
        return Result(
            bus=args.bus,
            messages=args.messages,
            payload_bytes=len(padding) + _HEADER.size,
            subjects=args.subjects,
            publishers=args.publishers,
            rate=args.rate,
            publish_per_s=round(args.messages / ((published - started) * 1e-9)),
            deliver_per_s=round(got / (max(receiver.last_at - started, 1) * 1e-9)),
            p50_ms=round(statistics.median(lat) * ms, 3),
            p99_ms=round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * ms, 3),
            max_ms=round(lat[-1] * ms, 3),
            lost=args.messages - got,
            out_of_order=receiver.out_of_order,
        )
    finally:
        await a.close()
        await b.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bus", choices=["nats", "redis", "memory"], required=True)
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--subjects", type=int, default=100, help="subjects (users) on node B")
    p.add_argument("--size", type=int, default=256, help="payload bytes")
    p.add_argument("--publishers", type=int, default=1, help="concurrent publishing tasks")
    p.add_argument("--rate", type=float, default=0.0, help="msgs/s in total; 0 = flat out")
    p.add_argument("--wait", type=float, default=60.0, help="seconds to wait for deliveries")
    p.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    if args.publishers > args.subjects:
        p.error("--publishers must not exceed --subjects (each owns its subjects)")

    result = asyncio.run(measure(args))
    if args.json:
        print(json.dumps(asdict(result)))
    else:
        mode = f"{args.rate:.0f} msg/s offered" if args.rate else "flat out"
        print(
            f"{result.bus}: {result.messages} x {result.payload_bytes} B, "
            f"{result.subjects} subjects, {result.publishers} publisher(s), {mode}\n"
            f"  publish  {result.publish_per_s:>10,} msg/s\n"
            f"  deliver  {result.deliver_per_s:>10,} msg/s\n"
            f"  latency  p50 {result.p50_ms} ms  p99 {result.p99_ms} ms  max {result.max_ms} ms\n"
            f"  lost {result.lost}  out of order {result.out_of_order}"
        )
    return 0 if result.lost == 0 and result.out_of_order == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
