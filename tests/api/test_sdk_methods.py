"""The SDK's conversation, inbox, presence and attachment methods against a served app,
on both stacks: each call's typed answer, and its effect as another user sees it."""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from litestar.testing import TestClient
from PIL import Image
from ws_support import connected, event_type, until

from conftest import PASSWORD, Account, App, unique_name
from served import serving
from socius.client import ApiError, Member, Notification, NotificationPage, Presence


def befriend(a: Account, b: Account) -> None:
    a.client.send_friend_request(b.id)
    b.client.accept_friend_request(a.id)


def test_members_roles_and_leaving(register: Callable[..., Account]) -> None:
    owner, ada, bo, cy = register(), register(), register(), register()
    group = owner.client.create_group("trio", [ada.id])
    renamed = owner.client.update_conversation(group.id, title="quartet", message_ttl_seconds=60)
    assert (renamed.title, renamed.message_ttl_seconds) == ("quartet", 60)
    assert owner.client.update_conversation(group.id, message_ttl_seconds=None).title == "quartet"
    assert ada.client.conversation(group.id).message_ttl_seconds is None

    added = owner.client.add_members(group.id, [bo.id, cy.id])
    assert added.member_count == 4
    page = ada.client.members(group.id, limit=2)
    assert len(page.items) == 2
    assert page.next_cursor is not None
    every = list(ada.client.iter_members(group.id, limit=2))
    assert all(isinstance(m, Member) for m in every)
    assert {m.user_id: m.role for m in every} == {
        owner.id: "owner",
        ada.id: "member",
        bo.id: "member",
        cy.id: "member",
    }

    promoted = owner.client.set_member_role(group.id, ada.id, "admin")
    assert (promoted.user_id, promoted.role) == (ada.id, "admin")
    with pytest.raises(ApiError) as refused:
        bo.client.set_member_role(group.id, cy.id, "admin")
    assert refused.value.status == 403

    ada.client.remove_member(group.id, cy.id)  # an admin removes
    bo.client.leave(group.id)
    assert {m.user_id for m in owner.client.iter_members(group.id)} == {owner.id, ada.id}
    for gone in (bo, cy):
        with pytest.raises(ApiError) as missing:
            gone.client.conversation(group.id)
        assert (missing.value.status, missing.value.code) == (404, "conversation_not_found")


def test_edit_delete_and_react(register: Callable[..., Account]) -> None:
    ada, bo = register(), register()
    cid = ada.client.open_direct(bo.id).id
    sent = ada.client.send_message(cid, "helo", client_msg_id="m1")
    edited = ada.client.edit_message(cid, sent.id, "hello")
    assert (edited.body, edited.edited_at is not None) == ("hello", True)
    with pytest.raises(ApiError) as not_theirs:
        bo.client.edit_message(cid, sent.id, "hijacked")
    assert (not_theirs.value.status, not_theirs.value.code) == (403, "not_the_sender")

    assert bo.client.react(cid, sent.id, "👍").reactions == {"👍": 1}
    assert ada.client.react(cid, sent.id, "👍").reactions == {"👍": 2}
    assert bo.client.react(cid, sent.id, "👍").reactions == {"👍": 2}  # idempotent
    assert bo.client.unreact(cid, sent.id, "👍").reactions == {"👍": 1}
    with pytest.raises(ApiError) as bad:
        bo.client.react(cid, sent.id, "no way")
    assert bad.value.status == 422

    gone = ada.client.delete_message(cid, sent.id)
    assert (gone.id, gone.deleted, gone.body) == (sent.id, True, None)
    [seen] = bo.client.messages(cid)
    assert (seen.deleted, seen.body) == (True, None)


def test_typing_reaches_the_other_member(
    http: TestClient[Any], register: Callable[..., Account]
) -> None:
    ada, bo = register(), register()
    cid = ada.client.open_direct(bo.id).id
    with connected(http, bo.auth.access_token) as (ws, _, _):
        ada.client.typing(cid)
        frame, _ = until(ws, lambda f: f["type"] == "event" and event_type(f) == "typing")
    assert frame["event"]["conversation_id"] == cid
    assert frame["event"]["user_id"] == ada.id


def test_read_pointer_notifications_and_presence(register: Callable[..., Account]) -> None:
    ada, bo, stranger = register(), register(), register()
    ada.client.send_friend_request(bo.id)
    inbox = bo.client.notifications()
    assert isinstance(inbox, NotificationPage)
    assert inbox.unread_count >= 1
    newest = inbox.items[0]
    assert isinstance(newest, Notification)
    assert (newest.type, newest.read) == ("friend.request", False)
    assert bo.client.mark_notifications_read(newest.id) == inbox.unread_count
    after = bo.client.notifications()
    assert after.unread_count == 0
    assert all(n.read for n in after.items)

    bo.client.accept_friend_request(ada.id)
    [friend] = ada.client.presence([bo.id, stranger.id])
    assert friend == Presence(user_id=bo.id, online=False, last_seen_at=None)

    cid = ada.client.open_direct(bo.id).id
    for n in range(3):
        ada.client.send_message(cid, f"m{n}", client_msg_id=f"m{n}")
    assert bo.client.conversation(cid).unread_count == 3
    assert bo.client.mark_read(cid, 2) == 2
    assert bo.client.mark_read(cid, 1) == 2  # never back
    assert bo.client.conversation(cid).unread_count == 1


def png(size: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), "green").save(out, format="PNG")
    return out.getvalue()


async def test_attachments_stream_both_ways(app: App) -> None:
    """The async client uploads from an iterable of chunks and reads the bytes back chunk
    by chunk; a message may carry them with no text."""
    data = png(300) + b"\0" * 200_000  # an image with bytes after its end: still a PNG
    async with serving(app) as (sdk, _):
        ada, bo = sdk(), sdk()
        await ada.register(unique_name(), PASSWORD)
        bo_id = (await bo.register(unique_name(), PASSWORD)).user.id

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(data), 50_000):
                yield data[start : start + 50_000]

        attachment = await ada.upload(chunks(), filename="big.png")
        assert (attachment.size, attachment.content_type) == (len(data), "image/png")
        assert attachment.sha256 == hashlib.sha256(data).hexdigest()
        cid = (await ada.open_direct(bo_id)).id
        sent = await ada.send_message(cid, "", client_msg_id="f", attachment_ids=[attachment.id])
        assert (sent.body, [a.id for a in sent.attachments]) == ("", [attachment.id])

        pieces = [c async for c in bo.stream_attachment(attachment.id, chunk_size=4096)]
        assert len(pieces) > 1
        assert b"".join(pieces) == data
        with pytest.raises(ApiError) as missing:
            async for _ in bo.stream_attachment("12345"):
                pass
        assert missing.value.status == 404


def test_the_sync_client_streams_too(register: Callable[..., Account]) -> None:
    ada, bo = register(), register()
    data = png(64)
    attachment = ada.client.upload(iter([data[:100], data[100:]]), filename="g.png")
    assert attachment.sha256 == hashlib.sha256(data).hexdigest()
    cid = ada.client.open_direct(bo.id).id
    ada.client.send_message(cid, "", client_msg_id="s", attachment_ids=[attachment.id])
    pieces = list(bo.client.stream_attachment(attachment.id, chunk_size=64))
    assert len(pieces) > 1
    assert b"".join(pieces) == data
