"""JSON bodies: decoded strictly into the declared type, errors chosen by what went wrong."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import pytest

from socius.api.body import MAX_DEPTH, InvalidJson, decode_body, depth_exceeds
from socius.domain.errors import InvalidInput


class Read(msgspec.Struct, forbid_unknown_fields=True):
    seq: Annotated[int, msgspec.Meta(ge=0)]
    note: str = ""


class Direct(msgspec.Struct, tag_field="kind", tag="direct", forbid_unknown_fields=True):
    member_ids: list[str]


class Group(msgspec.Struct, tag_field="kind", tag="group", forbid_unknown_fields=True):
    title: str


def refusal(body: bytes, target: Any = Read) -> tuple[str, dict[str, Any]]:
    with pytest.raises((InvalidInput, InvalidJson)) as caught:
        decode_body(body, target)
    error = caught.value
    if isinstance(error, InvalidJson):
        return "invalid_json", {}
    return error.code, error.details


def test_a_valid_body_is_the_struct() -> None:
    assert decode_body(b'{"seq": 3, "note": "x"}', Read) == Read(seq=3, note="x")
    assert decode_body(b'{"kind": "group", "title": "t"}', Direct | Group) == Group(title="t")


def test_an_integral_float_is_an_integer_as_json_schema_says() -> None:
    assert decode_body(b'{"seq": 3.0}', Read) == Read(seq=3)
    assert decode_body(b'{"seq": 3e2}', Read) == Read(seq=300)


@pytest.mark.parametrize(
    "body", [b'{"seq": 3.5}', b'{"seq": "3"}', b'{"seq": true}', b'{"seq": null}', b'{"seq": -1}']
)
def test_no_lax_conversions(body: bytes) -> None:
    assert refusal(body) == ("validation_error", {"source": "body", "field": "seq"})


def test_unknown_fields_are_named() -> None:
    assert refusal(b'{"seq": 1, "colour": "red"}') == (
        "unknown_field",
        {"field": "colour", "source": "body"},
    )
    # In a tagged union, the fields of the member the tag picks.
    assert refusal(b'{"kind": "direct", "member_ids": [], "title": "t"}', Direct | Group) == (
        "unknown_field",
        {"field": "title", "source": "body"},
    )


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"colour": 1, "seq": [}',  # the typed decoder stops at the unknown field first
        b'{"seq": 1} trailing',
        b"\xff\xfe",
        b'"\\ud800"',
    ],
)
def test_not_json_is_invalid_json_wherever_the_fault_is(body: bytes) -> None:
    assert refusal(body)[0] == "invalid_json"


def test_nesting_past_the_limit_is_invalid_json() -> None:
    def nested(depth: int) -> bytes:  # the object, then `depth` arrays in it
        return b'{"seq": 1, "note": ' + b"[" * depth + b"]" * depth + b"}"

    assert refusal(nested(MAX_DEPTH - 1))[0] == "validation_error"
    assert refusal(nested(MAX_DEPTH))[0] == "invalid_json"
    assert refusal(nested(100_000))[0] == "invalid_json"  # msgspec's own recursion guard


def test_depth() -> None:
    assert not depth_exceeds(1, 0)
    assert not depth_exceeds([], 1)
    assert depth_exceeds([[]], 1)
    assert not depth_exceeds({"a": [1, {"b": 2}]}, 3)
    assert depth_exceeds({"a": [1, {"b": []}]}, 3)
    wide: list[Any] = [[] for _ in range(10_000)]
    assert not depth_exceeds(wide, 2)
