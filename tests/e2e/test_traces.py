"""End to end, on real ``socius serve`` processes with SOCIUS_OTLP_ENDPOINT set: the
exporter of the `otel` extra sends spans to a real OTLP/HTTP receiver; a message sent
through node A and delivered to a socket on node B is one trace; the nodes' log lines
carry its trace id."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator

import pytest

from cache_contract import eventually
from e2e.cluster import Cluster
from otlp_receiver import OtlpReceiver, Span, children
from socius.client import AsyncClient, RealtimeClient
from socius.services.delivery import shard_subject

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

WAIT = 15.0
PASSWORD = "correct horse battery staple"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


async def test_a_message_is_one_trace_from_the_post_on_a_to_the_socket_on_b(
    cluster: Cluster, receiver: OtlpReceiver
) -> None:
    cluster.env |= {
        "SOCIUS_OTLP_ENDPOINT": receiver.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export every 100 ms, not every 5 s
        "SOCIUS_LOG_LEVEL": "info",
        "SOCIUS_LOG_JSON": "true",
    }
    a, b = await cluster.start("a", "b")
    alice = AsyncClient(a.http_url, timeout=WAIT)
    bob = AsyncClient(b.http_url, timeout=WAIT)
    try:
        await alice.register(f"e2e_{secrets.token_hex(6)}", PASSWORD)
        bob_id = (await bob.register(f"e2e_{secrets.token_hex(6)}", PASSWORD)).user.id
        conversation = (await alice.open_direct(bob_id)).id
        assert bob.access_token is not None
        trace_id = secrets.token_hex(16)
        async with RealtimeClient(b.ws_url, bob.access_token) as bob_rt:
            await alice.request(
                "POST",
                f"/v1/conversations/{conversation}/messages",
                json={"client_msg_id": "t-1", "body": "traced"},
                headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
            )
            async with asyncio.timeout(WAIT):
                while (await bob_rt.recv()).get("type") != "event":
                    pass
    finally:
        await alice.aclose()
        await bob.aclose()

    def complete(spans: list[Span]) -> bool:
        mine = [s for s in spans if s.trace_id == trace_id]
        return any(s.name == "bus deliver" for s in mine) and any(s.kind == "server" for s in mine)

    await asyncio.to_thread(receiver.wait_for, complete, timeout=WAIT)
    spans = receiver.trace(trace_id)
    [server] = [s for s in spans if s.kind == "server"]
    assert any(s.attributes.get("db.system") == "postgresql" for s in children(spans, server))
    [publish] = [
        s
        for s in children(spans, server)
        if s.name == "bus publish"
        and s.attributes["messaging.destination.name"] == shard_subject(int(bob_id))
    ]
    [deliver] = [s for s in children(spans, publish) if s.name == "bus deliver"]
    assert deliver.attributes["messaging.system"] == cluster.bus
    assert server.instance != deliver.instance  # two processes: node A, node B
    assert {s.resource["service.name"] for s in spans} == {"socius"}

    def traced_lines() -> list[dict[str, object]]:
        lines = [json.loads(line) for line in a.output().splitlines() if line.startswith("{")]
        return [line for line in lines if line.get("trace_id") == trace_id]

    # Access lines are written in batches (every 0.5 s at the latest).
    async def logged() -> bool:
        return any(line.get("event") == "request" for line in traced_lines())

    await eventually(logged, within=WAIT)
    access = traced_lines()
    assert [line["event"] for line in access] == ["request"]
    assert access[0]["span_id"] == server.span_id
