"""Without the socius[push] extra (or a gateway URL), registering that kind of device is a
clear 403, before anything is stored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from socius.domain.errors import Forbidden
from socius.domain.ids import IdGenerator
from socius.domain.push import Device, DeviceKind
from socius.push.sender import HttpPushSender
from socius.services.push import PushService


class _Nothing:
    def supports(self, kind: str) -> bool:
        return False

    async def send(self, device: Device, payload: bytes, *, topic: str, ttl: int) -> int:
        raise AssertionError("never sent")

    async def close(self) -> None:
        return None


def _no_uow(*_args: Any, **_kwargs: Any) -> Any:
    raise AssertionError("nothing is stored")


def _service() -> PushService:
    return PushService(_no_uow, lambda: datetime.now(UTC), IdGenerator(1), _Nothing())


async def test_webpush_without_the_extra_is_refused_with_its_name() -> None:
    with pytest.raises(Forbidden) as refused:
        await _service().register(
            1, DeviceKind.WEBPUSH, endpoint="https://push.example/x", p256dh="x", auth="y"
        )
    assert refused.value.code == "webpush_unavailable"
    assert "socius[push]" in refused.value.message
    with pytest.raises(Forbidden) as no_key:
        await _service().public_key()
    assert no_key.value.code == "webpush_unavailable"


async def test_gateway_without_a_url_is_refused() -> None:
    with pytest.raises(Forbidden) as refused:
        await _service().register(1, DeviceKind.GATEWAY, token="t")
    assert refused.value.code == "push_gateway_unavailable"


def test_the_sender_says_what_it_supports() -> None:
    async def pem() -> str:
        raise AssertionError("not needed")

    sender = HttpPushSender(
        endpoints=_Nothing(),  # type: ignore[arg-type]
        gateway=_Nothing(),  # type: ignore[arg-type]
        gateway_url=None,
        gateway_secret=None,
        vapid_pem=pem,
        vapid_subject="mailto:a@b.example",
        webpush=False,
    )
    assert not sender.supports("webpush")
    assert not sender.supports("gateway")
