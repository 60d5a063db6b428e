"""Which notifications messages and reactions make, through the public API, on both stacks
(docs/push.md): ``message``, ``mention`` (``@username``, any case), ``reply`` and
``reaction``, one per recipient and message, of the most specific kind the recipient keeps
on; never to the sender; never to someone muting the conversation or the sender, or
blocked either way with them; per-kind settings; a message deleted before the notifier
reads it notifies nobody.

The relay and the notifier are driven one round at a time by the test (deterministic),
as the event stream tests do.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from conftest import Account, App
from contract import assert_error, bearer


def _notify(app: App, http: Any) -> None:
    """One relay round, then notifier rounds until the stream is read."""
    container = app.wiring.container

    async def rounds() -> None:
        while await container.relay.run_once():
            pass
        while await container.notifier.run_once():
            pass

    http.blocking_portal.call(rounds)


def _send(account: Account, conversation_id: str, body: str, **extra: Any) -> Any:
    return account.client.send_message(
        conversation_id, body, client_msg_id=secrets.token_hex(8), **extra
    )


def _kinds(account: Account) -> list[tuple[str, str]]:
    """(type, message_id) of the account's notifications about messages, oldest first
    (``member.added`` and the like left out)."""
    items = account.client.notifications().items
    return [
        (n.type, n.payload["message_id"])
        for n in reversed(items)
        if n.type in ("message", "mention", "reply", "reaction")
    ]


def _react(http: Any, account: Account, cid: str, mid: str, *, on: bool = True) -> None:
    assert account.client.access_token is not None
    path = f"/v1/conversations/{cid}/messages/{mid}/reactions/%F0%9F%91%8D"
    method = http.put if on else http.delete
    answer = method(path, headers=bearer(account.client.access_token))
    assert answer.status_code == 200, answer.text


def test_message_mention_reply_reaction(
    app: App, http: Any, register: Callable[..., Account]
) -> None:
    alice, bob, carol = register(), register(), register()
    group = alice.client.create_group("g", [bob.id, carol.id])
    _notify(app, http)  # (the member.added notifications of the group)
    start = {a.id: len(_kinds(a)) for a in (alice, bob, carol)}

    plain = _send(alice, group.id, "hi all")
    mention = _send(alice, group.id, f"hey @{bob.username.upper()}, look")
    own = _send(bob, group.id, "mine")
    reply = _send(alice, group.id, "re", reply_to=own.id)
    both = _send(alice, group.id, f"@{bob.username} re again", reply_to=own.id)
    _react(http, alice, group.id, own.id)
    _react(http, alice, group.id, own.id, on=False)  # taking it back notifies nobody
    _notify(app, http)

    assert _kinds(bob)[start[bob.id] :] == [
        ("message", plain.id),
        ("mention", mention.id),
        ("reply", reply.id),
        ("mention", both.id),
        ("reaction", own.id),
    ]
    assert _kinds(carol)[start[carol.id] :] == [
        ("message", m.id) for m in (plain, mention, own, reply, both)
    ]
    assert _kinds(alice)[start[alice.id] :] == [("message", own.id)]  # never her own
    reaction = bob.client.notifications().items[0]
    assert reaction.payload == {
        "conversation_id": group.id,
        "message_id": own.id,
        "user_id": alice.id,
    }
    assert "body" not in str(bob.client.notifications().items)


def test_settings_turn_kinds_off(app: App, http: Any, register: Callable[..., Account]) -> None:
    alice, bob = register(), register()
    assert bob.client.notification_settings().message is True
    direct = alice.client.open_direct(bob.id)
    own = _send(bob, direct.id, "mine")
    bob.client.update_notification_settings(mention=False, reaction=False)
    settings = bob.client.notification_settings()
    assert (settings.message, settings.mention, settings.reply, settings.reaction) == (
        True,
        False,
        True,
        False,
    )
    mention = _send(alice, direct.id, f"@{bob.username}")
    _react(http, alice, direct.id, own.id)
    _notify(app, http)
    assert _kinds(bob) == [("message", mention.id)]  # a mention, kept as a message

    bob.client.update_notification_settings(message=False)
    _send(alice, direct.id, "plain")
    reply = _send(alice, direct.id, "re", reply_to=own.id)
    _notify(app, http)
    assert _kinds(bob) == [("message", mention.id), ("reply", reply.id)]

    assert bob.client.access_token is not None
    auth = bearer(bob.client.access_token)
    for body, code in [({"message": "yes"}, "validation_error"), ({"sms": True}, "unknown_field")]:
        assert_error(http.patch("/v1/me/notification-settings", json=body, headers=auth), 422, code)


def test_mutes_and_blocks_suppress(app: App, http: Any, register: Callable[..., Account]) -> None:
    alice, bob, carol, dave, erin = (register() for _ in range(5))
    group = alice.client.create_group("g", [bob.id, carol.id, dave.id, erin.id])
    carol.client.mute_conversation(group.id)  # the conversation
    bob.client.mute(alice.id)  # the sender
    dave.client.block(alice.id)  # a block, one way...
    alice.client.block(erin.id)  # ...or the other
    _notify(app, http)
    start = {a.id: len(_kinds(a)) for a in (alice, bob, carol, dave, erin)}

    from_alice = _send(alice, group.id, f"@{bob.username} @{carol.username} @{dave.username}")
    from_bob = _send(bob, group.id, "from bob")
    _react(http, alice, group.id, from_bob.id)  # bob mutes alice: no reaction either
    _notify(app, http)

    assert _kinds(bob)[start[bob.id] :] == []
    assert _kinds(carol)[start[carol.id] :] == []
    assert _kinds(dave)[start[dave.id] :] == [("message", from_bob.id)]
    assert _kinds(erin)[start[erin.id] :] == [("message", from_bob.id)]
    assert _kinds(alice)[start[alice.id] :] == [("message", from_bob.id)]
    assert from_alice.id not in str(bob.client.notifications().items)


def test_a_message_deleted_before_the_notifier_reads_it_notifies_nobody(
    app: App, http: Any, register: Callable[..., Account]
) -> None:
    alice, bob = register(), register()
    direct = alice.client.open_direct(bob.id)
    gone = _send(alice, direct.id, "oops")
    assert alice.client.access_token is not None
    deleted = http.delete(
        f"/v1/conversations/{direct.id}/messages/{gone.id}",
        headers=bearer(alice.client.access_token),
    )
    assert deleted.status_code == 200, deleted.text
    kept = _send(alice, direct.id, "this one")
    _notify(app, http)
    assert _kinds(bob) == [("message", kept.id)]
