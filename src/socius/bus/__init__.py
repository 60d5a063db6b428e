"""Implementations of the bus port: cross-node fan-out of live events.

- ``memory.MemoryBus``: in-process, for the embedded mode and tests (buses that share a
  ``MemoryBroker`` behave like nodes on one broker).
- ``nats.NatsBus``: NATS core pub/sub.
- ``redis.RedisBus``: Redis pub/sub, one shared subscriber connection per node.

All three are best effort (at most once, in publish order per subject); durability comes
from the database's event log. Handlers are awaited one message at a time, so they must be
quick (hand the payload to a queue); one that raises is logged and delivery goes on.
"""
