"""Web Push messages: the payload encrypted to the subscription's keys (RFC 8291,
``aes128gcm``) and a VAPID authorization (RFC 8292), both made by pywebpush and py_vapid,
the maintained implementations (extra ``socius[push]``). Sending is the caller's: over
the SSRF-guarded HTTP client every outbound request of socius uses."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from socius.domain.push import Device

__all__ = ["VapidSigner", "encrypt", "webpush_available"]


def webpush_available() -> bool:
    try:
        import py_vapid  # noqa: F401
        import pywebpush  # noqa: F401
    except ImportError:
        return False
    return True


def encrypt(device: Device, payload: bytes) -> bytes:
    """``payload`` as an ``aes128gcm`` body only the subscription's browser can read."""
    from pywebpush import WebPusher

    pusher = WebPusher(
        {"endpoint": device.endpoint, "keys": {"p256dh": device.p256dh, "auth": device.auth}}
    )
    encoded: Any = pusher.encode(payload, content_encoding="aes128gcm")
    return bytes(encoded["body"])


class VapidSigner:
    """``Authorization: vapid t=<JWT>, k=<public key>`` per push service origin, reused
    until an hour before the JWT's 12-hour expiry."""

    def __init__(self, pem: str, subject: str) -> None:
        from py_vapid import Vapid02

        self._vapid = Vapid02.from_pem(pem.encode())
        self._subject = subject
        self._made: dict[str, tuple[float, str]] = {}

    def authorization(self, endpoint: str) -> str:
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc}"
        now = time.time()
        cached = self._made.get(audience)
        if cached is not None and cached[0] > now + 3600:
            return cached[1]
        expires = int(now) + 12 * 3600
        headers = self._vapid.sign({"aud": audience, "sub": self._subject, "exp": expires})
        value = str(headers["Authorization"])
        if len(self._made) > 1000:
            self._made.clear()
        self._made[audience] = (float(expires), value)
        return value
