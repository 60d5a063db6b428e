"""GET /v1/me/export holds everything stored about the caller, and nothing secret."""

from __future__ import annotations


def test_export_holds_relationships_messages_and_notifications(register):
    ada, bob = register(), register()
    bob.client.send_friend_request(ada.id)
    ada.client.accept_friend_request(bob.id)
    ada.client.follow(bob.id)
    direct = ada.client.open_direct(bob.id)
    ada.client.send_message(direct.id, "hello from the archive", client_msg_id="e1")

    archive = ada.client.export()

    assert archive["profile"]["id"] == int(ada.id)
    assert "password_hash" not in archive["profile"]
    relationships = archive["relationships"]
    assert [r["user_id"] for r in relationships["friend"]] == [bob.id]
    assert [r["user_id"] for r in relationships["follows"]] == [bob.id]
    assert [c["id"] for c in archive["conversations"]] == [direct.id]
    assert [m["body"] for m in archive["messages"]] == ["hello from the archive"]
    # Bob's request reached Ada's inbox.
    assert [n["type"] for n in archive["notifications"]] == ["friend.request"]
    # Nothing of Bob's own data: his messages, his inbox.
    bob.client.send_message(direct.id, "bob's words", client_msg_id="b1")
    assert "bob's words" not in str(ada.client.export())
