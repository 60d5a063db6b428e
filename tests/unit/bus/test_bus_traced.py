"""TracedBus and the trace context envelope, on in-process buses sharing a broker."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from socius.bus.memory import MemoryBroker, MemoryBus
from socius.bus.traced import TracedBus
from socius.domain.errors import BusUnavailable
from socius.observability.spans import open_envelope, seal_envelope, strip_trace_context
from socius.realtime.hub import Hub
from socius.services.delivery import EncodedBusEvent, Fanned, shard_subject

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def test_the_envelope_carries_traceparent_and_tracestate() -> None:
    sealed = seal_envelope({"traceparent": PARENT, "tracestate": "k=v"}, b'{"type":"x"}')
    assert sealed.startswith(b"\x1e")
    assert open_envelope(sealed) == ({"traceparent": PARENT, "tracestate": "k=v"}, b'{"type":"x"}')
    assert strip_trace_context(sealed) == b'{"type":"x"}'


def test_a_payload_without_envelope_is_left_alone() -> None:
    payload = b'{"type":"x"}'
    assert seal_envelope({}, payload) is payload
    assert open_envelope(payload) == (None, payload)
    assert open_envelope(b"\x1eno end mark") == (None, b"\x1eno end mark")


async def test_delivery_is_a_child_of_the_publish_on_another_bus(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = provider.get_tracer("test")
    broker = MemoryBroker()
    node_a = TracedBus(MemoryBus(broker=broker), tracer, system="memory")
    node_b = TracedBus(MemoryBus(broker=broker), tracer, system="memory")
    await node_a.start()
    await node_b.start()
    got: asyncio.Queue[tuple[bytes, str]] = asyncio.Queue()

    async def handler(payload: bytes) -> None:
        from opentelemetry.trace import get_current_span

        got.put_nowait((payload, get_current_span().get_span_context().span_id))

    await node_b.subscribe("user.1", handler)
    with tracer.start_as_current_span("request") as request:
        await node_a.publish("user.1", b'{"type":"x"}')
    payload, current = await asyncio.wait_for(got.get(), 5)
    await node_a.close()
    await node_b.close()

    assert payload == b'{"type":"x"}'  # the handler sees the payload alone
    spans = {s.name: s for s in exporter.get_finished_spans()}
    publish, deliver = spans["bus publish"], spans["bus deliver"]
    assert publish.kind == SpanKind.PRODUCER
    assert deliver.kind == SpanKind.CONSUMER
    assert publish.parent is not None
    assert publish.parent.span_id == request.get_span_context().span_id
    assert deliver.parent is not None
    assert deliver.parent.span_id == publish.context.span_id
    assert deliver.context.trace_id == request.get_span_context().trace_id
    assert current == deliver.context.span_id  # the handler runs inside the deliver span
    assert deliver.attributes is not None
    assert deliver.attributes["messaging.destination.name"] == "user.1"


async def test_a_failed_publish_is_an_error_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    bus = TracedBus(MemoryBus(), provider.get_tracer("test"), system="memory")  # not started
    with pytest.raises(BusUnavailable):
        await bus.publish("user.1", b"{}")
    [span] = exporter.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR


async def test_a_node_that_does_not_trace_reads_a_traced_nodes_events(
    provider: TracerProvider,
) -> None:
    broker = MemoryBroker()
    traced = TracedBus(MemoryBus(broker=broker), provider.get_tracer("test"), system="memory")
    plain = MemoryBus(broker=broker)
    await traced.start()
    await plain.start()
    delivered: asyncio.Queue[EncodedBusEvent] = asyncio.Queue()

    class Listener:
        def deliver(self, event: EncodedBusEvent) -> None:
            delivered.put_nowait(event)

    hub = Hub(plain)
    await hub.join(7, Listener())
    payload = {"conversation_id": "3"}
    event = Fanned("typing", msgspec.Raw(msgspec.json.encode(payload)), None, [7])
    await traced.publish(shard_subject(7), msgspec.json.encode([event]))
    got = await asyncio.wait_for(delivered.get(), 5)
    # Connections get the payload still encoded (it is rendered once per node).
    assert (got.type, msgspec.json.decode(got.payload), got.seq) == ("typing", payload, None)
    await traced.close()
    await plain.close()
