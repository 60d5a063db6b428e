"""64-bit, time-ordered ids: milliseconds since the socius epoch | node | sequence.

Layout (most significant first): 1 sign bit (0), 41 bits of milliseconds since
2024-01-01T00:00:00Z (about 69 years), 10 bits of node id, 12 bits of sequence.
Ids travel as decimal strings, because JavaScript loses precision past 2**53.
"""

from __future__ import annotations

import threading
import time

__all__ = [
    "EPOCH_MS",
    "ID_PATTERN",
    "IdGenerator",
    "format_id",
    "id_timestamp_ms",
    "parse_id",
    "parse_id_bound",
]

EPOCH_MS = 1_704_067_200_000
_NODE_BITS = 10
_SEQ_BITS = 12
_MAX_NODE = (1 << _NODE_BITS) - 1
_MAX_SEQ = (1 << _SEQ_BITS) - 1
_MAX_ID = (1 << 63) - 1
ID_PATTERN = r"^[0-9]{1,19}$"
"""How an id looks on the wire (published in the OpenAPI document). Not every such string
is an id: 0 and numbers past 2**63 - 1 name nothing."""


class IdGenerator:
    """Hands out unique, increasing ids for one node. Thread-safe."""

    def __init__(self, node_id: int) -> None:
        if not 0 <= node_id <= _MAX_NODE:
            raise ValueError(f"node_id must be 0..{_MAX_NODE}")
        self._node = node_id
        self._last_ms = -1
        self._seq = 0
        self._lock = threading.Lock()

    @property
    def node_id(self) -> int:
        return self._node

    def set_node(self, node_id: int) -> None:
        """Take a node id handed out at start-up (before any id is made)."""
        if not 0 <= node_id <= _MAX_NODE:
            raise ValueError(f"node_id must be 0..{_MAX_NODE}")
        with self._lock:
            self._node = node_id

    def next_id(self) -> int:
        with self._lock:
            now = max(int(time.time() * 1000) - EPOCH_MS, self._last_ms)
            if now == self._last_ms:
                self._seq = (self._seq + 1) & _MAX_SEQ
                if self._seq == 0:  # 4096 ids in this millisecond: borrow the next one
                    now += 1
            else:
                self._seq = 0
            self._last_ms = now
            return (now << (_NODE_BITS + _SEQ_BITS)) | (self._node << _SEQ_BITS) | self._seq


def id_timestamp_ms(value: int) -> int:
    """Unix milliseconds at which an id was made."""
    return (value >> (_NODE_BITS + _SEQ_BITS)) + EPOCH_MS


def format_id(value: int) -> str:
    return str(value)


def parse_id(text: str) -> int | None:
    """The id in ``text``, or None when it is not a well-formed id."""
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if 0 < value <= _MAX_ID else None


def parse_id_bound(text: str) -> int | None:
    """An id-shaped ``text`` as a bound ("up to this id"): 0..2**63 - 1, larger numbers
    clamped; None when it is not id-shaped."""
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    return min(int(text), _MAX_ID)
