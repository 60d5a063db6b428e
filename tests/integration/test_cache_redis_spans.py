"""RedisCache with a tracer, against a real Redis: one span per command, one per
pipeline (its commands' names, never keys or values), none outside a trace."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
import redis
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from socius.cache.redis import RedisCache

pytestmark = pytest.mark.redis

REDIS_URL = os.environ.get("SOCIUS_TEST_REDIS_URL", "")


@pytest.fixture
def prefix() -> Iterator[str]:
    if not REDIS_URL:
        if os.environ.get("CI") == "true":
            pytest.fail("redis is required under CI but SOCIUS_TEST_REDIS_URL is not set")
        pytest.skip("redis not configured (SOCIUS_TEST_REDIS_URL)")
    prefix = f"socius-test:{secrets.token_hex(6)}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


async def test_commands_and_pipelines_are_spans_of_the_current_trace(prefix: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    cache = RedisCache(REDIS_URL, prefix=prefix, tracer=tracer)
    try:
        await cache.set("outside", b"v", ttl=60)  # no trace here: no span
        with tracer.start_as_current_span("request") as request:
            await cache.set_many([("a", b"secret-a", 60), ("b", b"secret-b", 60)])
            assert await cache.get_many(["a", "b"]) == [b"secret-a", b"secret-b"]
            assert await cache.incr("n", ttl=60) == 1
            await cache.get_many_or_lease(["c"], ttl=5)
    finally:
        await cache.close()

    spans = [s for s in exporter.get_finished_spans() if s.name != "request"]
    assert [s.name for s in spans] == ["PIPELINE", "MGET", "MULTI", "EVALSHA"]
    for span in spans:
        assert span.parent is not None
        assert span.parent.span_id == request.get_span_context().span_id
        assert span.attributes is not None
        assert span.attributes["db.system"] == "redis"
        shown = repr(dict(span.attributes))
        assert "secret" not in shown  # no values
        assert prefix not in shown  # no keys
    pipeline, multi = spans[0].attributes, spans[2].attributes
    assert pipeline is not None
    assert multi is not None
    assert pipeline["db.statement"] == "SET SET"
    assert pipeline["db.redis.pipeline_length"] == 2
    assert multi["db.statement"] == "INCRBY PEXPIRE"  # (redis-py sends INCR as INCRBY)
