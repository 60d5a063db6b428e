"""The NATS bus's reader (bus/nats.py ``_Parser``): the messages of ``now`` handlers are
split off the socket's bytes by hand; whatever else the server sends goes through nats-py's
parser. However the bytes are cut into reads, every handler gets its payloads whole, once,
in order, and the other frames are handled as nats-py handles them."""

from __future__ import annotations

import pytest

from socius.bus.nats import _Client

pytestmark = pytest.mark.asyncio


def frames() -> tuple[bytes, dict[int, list[bytes]]]:
    """A stream of server frames, and what each ``now`` handler (sids 1 and 2) must get."""
    tricky = b"MSG x 1 3\r\nabc\r\n+OK\r\n"  # looks like frames, is a payload
    wire = b"".join(
        [
            b"MSG socius.user.1 1 5\r\nhello\r\n",
            b"MSG socius.user.2 2 %d\r\n%b\r\n" % (len(tricky), tricky),
            b"+OK\r\n",
            b"MSG socius.user.9 9 4\r\nnone\r\n",  # no such subscription: dropped
            b"MSG socius.user.1 1 0\r\n\r\n",  # empty payload
            b"MSG socius.user.1 1 _INBOX.x 5\r\nreply\r\n",  # a reply: not for `now`
            b"HMSG socius.user.2 2 12 17\r\nNATS/1.0\r\n\r\nheads\r\n",
            b"MSG  socius.user.2   2   4\r\nwide\r\n",  # odd spacing: nats-py's regex
            b"MSG socius.user.1 1 2\r\n\xff\x00\r\n",
        ]
    )
    return wire, {1: [b"hello", b"", b"\xff\x00"], 2: [tricky, b"heads", b"wide"]}


@pytest.mark.parametrize("cut", [1, 2, 3, 7, 16, 1 << 16])
async def test_every_now_payload_arrives_whole_once_and_in_order(cut: int) -> None:
    nc = _Client()
    got: dict[int, list[bytes]] = {1: [], 2: []}
    nc.direct[1] = got[1].append
    nc.direct[2] = got[2].append
    wire, expected = frames()
    for at in range(0, len(wire), cut):
        await nc._ps.parse(wire[at : at + cut])
    assert got == expected
    assert not nc._ps.buf
    assert nc.stats["in_msgs"] >= 6
