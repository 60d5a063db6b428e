"""/v1/me/devices, /v1/me/notification-settings and /v1/push/vapid-public-key
(docs/push.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Router, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT

from socius.api.dependencies import Caller, container_of
from socius.api.options import with_options
from socius.api.rest.params import IdPath
from socius.domain.errors import NotFound
from socius.domain.ids import parse_id
from socius.domain.push import Device, DeviceKind, NotificationKind, NotificationSettings

__all__ = ["me_router", "public_router"]


# Patterns the checks of domain/push.py accept, so that the schema tells the truth.
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
ENDPOINT_PATTERN = rf"^https?://[A-Za-z0-9.-]+(:{_PORT})?(/[!-~]*)?$"
P256DH_PATTERN = r"^B[A-P][A-Za-z0-9_-]{85}=?$"  # base64url of an uncompressed P-256 point
AUTH_PATTERN = r"^[A-Za-z0-9_-]{22}(==)?$"  # base64url of 16 bytes
TOKEN_PATTERN = r"^[!-~]{1,4096}$"  # noqa: S105 (a pattern, not a secret)


class WebPushKeys(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    p256dh: Annotated[str, msgspec.Meta(pattern=P256DH_PATTERN, max_length=88)]
    auth: Annotated[str, msgspec.Meta(pattern=AUTH_PATTERN, max_length=24)]


class WebPushIn(msgspec.Struct, tag_field="kind", tag="webpush", forbid_unknown_fields=True):
    """A browser's ``PushSubscription.toJSON()``: ``endpoint`` (https; http only where the
    operator allows it, else 403 `insecure_endpoint`) and ``keys``. ``expirationTime`` is
    accepted and ignored."""

    endpoint: Annotated[str, msgspec.Meta(pattern=ENDPOINT_PATTERN, max_length=2048)]
    keys: WebPushKeys
    expirationTime: int | None = None


class GatewayIn(msgspec.Struct, tag_field="kind", tag="gateway", forbid_unknown_fields=True):
    """A device of the operator's push gateway: the token the gateway knows it by, and a
    ``platform`` label it routes by."""

    token: Annotated[str, msgspec.Meta(pattern=TOKEN_PATTERN, max_length=4096)]
    platform: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_.-]{1,16}$", max_length=16)] | None = (
        None
    )


class DeviceOut(msgspec.Struct, kw_only=True):
    id: str
    kind: str
    endpoint: str | None  # webpush
    platform: str | None  # gateway
    created_at: datetime
    last_pushed_at: datetime | None


class DevicesOut(msgspec.Struct, kw_only=True):
    items: list[DeviceOut]


class SettingsOut(msgspec.Struct, kw_only=True):
    message: bool
    mention: bool
    reply: bool
    reaction: bool


class SettingsIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    message: bool | None = None
    mention: bool | None = None
    reply: bool | None = None
    reaction: bool | None = None


class VapidKeyOut(msgspec.Struct, kw_only=True):
    public_key: str


def device_out(d: Device) -> DeviceOut:
    webpush = d.kind is DeviceKind.WEBPUSH
    return DeviceOut(
        id=str(d.id),
        kind=d.kind.value,
        endpoint=d.endpoint if webpush else None,
        platform=d.platform,
        created_at=d.created_at,
        last_pushed_at=d.last_pushed_at,
    )


def settings_out(s: NotificationSettings) -> SettingsOut:
    return SettingsOut(message=s.message, mention=s.mention, reply=s.reply, reaction=s.reaction)


@get("/devices", summary="Your push devices")
async def list_devices(state: State, principal: Caller) -> DevicesOut:
    found = await container_of(state).push.devices(principal.user_id)
    return DevicesOut(items=[device_out(d) for d in found])


@post(
    "/devices",
    status_code=201,
    summary="Register a push device",
    description='`{kind: "webpush", endpoint, keys: {p256dh, auth}}` (a browser\'s '
    "PushSubscription, made with the key of GET /v1/push/vapid-public-key) or "
    '`{kind: "gateway", token, platform?}` (a device of the operator\'s push gateway). '
    "While you have no live socket on any node, each new notification is pushed to every "
    "device of yours within about a second: ids only, never a message body "
    "(docs/push.md). Registering the same endpoint or token again, by anyone, replaces it. "
    "At most 20 devices (409 `too_many_devices`). 403 `insecure_endpoint` (an http endpoint "
    "where the operator allows https only), `webpush_unavailable` (the server lacks the "
    "socius[push] extra) or `push_gateway_unavailable` (no SOCIUS_PUSH_GATEWAY_URL).",
)
async def register_device(
    data: JSONBody[WebPushIn | GatewayIn], state: State, principal: Caller
) -> DeviceOut:
    push = container_of(state).push
    if isinstance(data, WebPushIn):
        made = await push.register(
            principal.user_id,
            DeviceKind.WEBPUSH,
            endpoint=data.endpoint,
            p256dh=data.keys.p256dh,
            auth=data.keys.auth,
        )
    else:
        made = await push.register(
            principal.user_id, DeviceKind.GATEWAY, token=data.token, platform=data.platform
        )
    return device_out(made)


@delete(
    "/devices/{device_id:str}",
    status_code=HTTP_204_NO_CONTENT,
    summary="Remove a push device",
    description="It gets no more pushes. 404 `device_not_found` (also for another user's).",
)
async def remove_device(device_id: IdPath, state: State, principal: Caller) -> None:
    parsed = parse_id(device_id)
    if parsed is None:
        raise NotFound("no such device", code="device_not_found")
    await container_of(state).push.unregister(principal.user_id, parsed)


@get(
    "/notification-settings",
    summary="Which kinds of notification you get",
    description="Each kind on (the default) or off: `message` (a new message in a "
    "conversation of yours), `mention` (`@yourname` in one), `reply` (to a message of "
    "yours), `reaction` (to a message of yours). A kind that is off makes neither a "
    "notification nor a push; a message that is both a mention and a message notifies "
    "as the most specific kind you keep on.",
)
async def get_settings(state: State, principal: Caller) -> SettingsOut:
    return settings_out(await container_of(state).push.settings(principal.user_id))


@patch(
    "/notification-settings",
    summary="Turn kinds of notification on or off",
    description="The kinds given change; the others stay. Answers the settings after.",
)
async def update_settings(
    data: JSONBody[SettingsIn], state: State, principal: Caller
) -> SettingsOut:
    changes = {
        kind: on for kind in NotificationKind if (on := getattr(data, kind.value)) is not None
    }
    updated = await container_of(state).push.update_settings(principal.user_id, changes)
    return settings_out(updated)


@get(
    "/vapid-public-key",
    summary="The server's VAPID public key",
    description="The `applicationServerKey` for `PushManager.subscribe` (an uncompressed "
    "P-256 point, base64url). 403 `webpush_unavailable` without the socius[push] extra.",
)
async def vapid_key(state: State, principal: Caller) -> VapidKeyOut:
    return VapidKeyOut(public_key=await container_of(state).push.public_key())


me_router = Router(
    path="/v1/me",
    route_handlers=with_options(
        [list_devices, register_device, remove_device, get_settings, update_settings]
    ),
    tags=["identity"],
    security=[{"bearer": []}],
)

public_router = Router(
    path="/v1/push",
    route_handlers=with_options([vapid_key]),
    tags=["identity"],
    security=[{"bearer": []}],
)
