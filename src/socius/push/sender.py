"""The push sender (services/ports.py ``PushSender``): Web Push to the subscription's
endpoint, or a JSON POST to the operator's gateway (docs/push.md, "Gateway")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec

from socius.domain.push import Device, DeviceKind
from socius.push.webpush import VapidSigner, encrypt, webpush_available
from socius.services.ports import WebhookSender

__all__ = ["HttpPushSender"]

_encode = msgspec.json.Encoder().encode


class HttpPushSender:
    def __init__(
        self,
        *,
        endpoints: WebhookSender,
        gateway: WebhookSender,
        gateway_url: str | None,
        gateway_secret: str | None,
        vapid_pem: Callable[[], Awaitable[str]],
        vapid_subject: str,
        webpush: bool | None = None,
    ) -> None:
        """``endpoints``: the guarded client for subscription endpoints (URLs users
        give); ``gateway``: the client for the operator's gateway URL."""
        self._endpoints = endpoints
        self._gateway = gateway
        self._gateway_url = gateway_url
        self._gateway_secret = gateway_secret
        self._vapid_pem = vapid_pem
        self._subject = vapid_subject
        self._webpush = webpush_available() if webpush is None else webpush
        self._signer: VapidSigner | None = None

    def supports(self, kind: str) -> bool:
        if kind == DeviceKind.WEBPUSH.value:
            return self._webpush
        return kind == DeviceKind.GATEWAY.value and bool(self._gateway_url)

    async def send(self, device: Device, payload: bytes, *, topic: str, ttl: int) -> int:
        if device.kind is DeviceKind.WEBPUSH:
            if self._signer is None:
                self._signer = VapidSigner(await self._vapid_pem(), self._subject)
            headers = {
                "authorization": self._signer.authorization(device.endpoint),
                "content-encoding": "aes128gcm",
                "content-type": "application/octet-stream",
                "ttl": str(ttl),
                "topic": topic,
                "urgency": "high",
            }
            answer = await self._endpoints.post(device.endpoint, headers, encrypt(device, payload))
            return answer.status_code
        assert self._gateway_url is not None
        body = _encode(
            {
                "token": device.endpoint,
                "platform": device.platform,
                "device_id": str(device.id),
                "collapse_key": topic,
                "ttl": ttl,
                "data": msgspec.Raw(payload),
            }
        )
        headers = {}
        if self._gateway_secret:
            headers["authorization"] = f"Bearer {self._gateway_secret}"
        answer = await self._gateway.post(self._gateway_url, headers, body)
        return answer.status_code

    async def close(self) -> None:
        await self._endpoints.close()
        await self._gateway.close()
