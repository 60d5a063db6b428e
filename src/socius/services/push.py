"""Push targets and notification settings: what ``/v1/me/devices``,
``/v1/me/notification-settings`` and ``/v1/push/vapid-public-key`` do (docs/push.md).

The VAPID key pair (P-256, RFC 8292) is made by the first node that starts without one
and stored in the database like the token signing keys, so every node signs Web Push
requests with the same key and browsers' subscriptions stay valid across nodes and
restarts.
"""

from __future__ import annotations

import base64
from dataclasses import replace

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from socius.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from socius.domain.ids import IdGenerator
from socius.domain.push import (
    Device,
    DeviceKind,
    NotificationKind,
    NotificationSettings,
    check_gateway_token,
    check_platform,
    check_webpush,
)
from socius.services.ports import Clock, PushSender, UnitOfWorkFactory

__all__ = ["MAX_DEVICES", "PushService", "vapid_public_key"]

MAX_DEVICES = 20  # per user
_VAPID_KID = "v1"


def vapid_public_key(pem: str) -> str:
    """The public key of a VAPID private key, as browsers take it
    (``applicationServerKey``): the uncompressed P-256 point, base64url without padding."""
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    raw = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _new_vapid_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _unavailable(kind: DeviceKind) -> Forbidden:
    if kind is DeviceKind.WEBPUSH:
        return Forbidden(
            "Web Push is not available on this server: it needs the socius[push] extra (pywebpush)",
            code="webpush_unavailable",
        )
    return Forbidden(
        "this server has no push gateway (SOCIUS_PUSH_GATEWAY_URL)",
        code="push_gateway_unavailable",
    )


class PushService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        ids: IdGenerator,
        sender: PushSender,
        *,
        allow_http: bool = False,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._ids = ids
        self._sender = sender
        self._allow_http = allow_http
        self._vapid_pem: str | None = None

    @property
    def sender(self) -> PushSender:
        return self._sender

    # VAPID ----------------------------------------------------------------------------

    async def load_vapid(self) -> str:
        """The VAPID private key (PEM), made and stored on first use."""
        if self._vapid_pem is not None:
            return self._vapid_pem
        async with self._uow(write=False) as uow:
            pem = await uow.push.vapid_key()
        if pem is None:
            async with self._uow() as uow:
                await uow.push.add_vapid_key(_VAPID_KID, _new_vapid_pem(), self._clock())
                pem = await uow.push.vapid_key()
                await uow.commit()
        assert pem is not None
        self._vapid_pem = pem
        return pem

    async def public_key(self) -> str:
        if not self._sender.supports(DeviceKind.WEBPUSH.value):
            raise _unavailable(DeviceKind.WEBPUSH)
        return vapid_public_key(await self.load_vapid())

    # devices --------------------------------------------------------------------------

    async def devices(self, user_id: int) -> list[Device]:
        async with self._uow(write=False) as uow:
            return await uow.push.devices([user_id])

    async def register(
        self,
        user_id: int,
        kind: DeviceKind,
        *,
        endpoint: str | None = None,
        p256dh: str | None = None,
        auth: str | None = None,
        token: str | None = None,
        platform: str | None = None,
    ) -> Device:
        """Register a push target of the caller's; the same endpoint again replaces it."""
        if not self._sender.supports(kind.value):
            raise _unavailable(kind)
        if kind is DeviceKind.WEBPUSH:
            if endpoint is None or p256dh is None or auth is None:
                raise InvalidInput(
                    "a webpush device needs endpoint and keys {p256dh, auth}",
                    code="invalid_push_keys",
                    details={"field": "keys"},
                )
            p256dh, auth = check_webpush(endpoint, p256dh, auth, allow_http=self._allow_http)
            target, platform = endpoint, None
        else:
            if token is None:
                raise InvalidInput(
                    "a gateway device needs a token",
                    code="invalid_token",
                    details={"field": "token"},
                )
            target, p256dh, auth = check_gateway_token(token), None, None
            platform = check_platform(platform)
        device = Device(
            id=self._ids.next_id(),
            user_id=user_id,
            kind=kind,
            endpoint=target,
            p256dh=p256dh,
            auth=auth,
            platform=platform,
            created_at=self._clock(),
        )
        async with self._uow() as uow:
            mine = await uow.push.devices([user_id])
            same = [d for d in mine if d.endpoint == target]
            if not same and len(mine) >= MAX_DEVICES:
                raise Conflict(
                    f"at most {MAX_DEVICES} devices: remove one first", code="too_many_devices"
                )
            await uow.push.put_device(device)
            await uow.commit()
        return device

    async def unregister(self, user_id: int, device_id: int) -> None:
        async with self._uow() as uow:
            if not await uow.push.delete_device(user_id, device_id):
                raise NotFound("no such device", code="device_not_found")
            await uow.commit()

    # settings -------------------------------------------------------------------------

    async def settings(self, user_id: int) -> NotificationSettings:
        async with self._uow(write=False) as uow:
            found = await uow.push.settings([user_id])
        return found.get(user_id, NotificationSettings())

    async def update_settings(
        self, user_id: int, changes: dict[NotificationKind, bool]
    ) -> NotificationSettings:
        async with self._uow() as uow:
            found = await uow.push.settings([user_id])
            updated = replace(
                found.get(user_id, NotificationSettings()),
                **{kind.value: on for kind, on in changes.items()},
            )
            await uow.push.put_settings(user_id, updated, self._clock())
            await uow.commit()
        return updated
