"""JSON encoding and typed decoding, with one cached msgspec decoder per type."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

__all__ = ["decode", "encode"]

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def encode(value: Any) -> bytes:
    return _encoder.encode(value)


def decode(tp: type[T], data: bytes) -> T:
    """Decode `data` as `tp`; unknown fields are ignored, missing ones raise ValidationError."""
    decoder = _decoders.get(tp)
    if decoder is None:
        decoder = _decoders[tp] = msgspec.json.Decoder(tp)
    result: T = decoder.decode(data)
    return result
