"""Reports of abuse (POST /v1/reports) and their resolution by administrators
(/v1/admin/reports), through the SDK and HTTP, on both stacks.

- A user reports a user or a message they can see; anything else is a 404, as it is
  everywhere (unknown, deleted, a conversation they are not in, blocked either way).
- One open report per reporter and target: reporting again answers the open report.
- Reports are rate limited per user (429 with Retry-After).
- Administrators list reports (newest first, by status, paged) with the reported message
  as it now is; resolving carries the action out (dismiss, delete the message for
  everyone, disable the account: its sockets close) and writes the audit log.
- report.created / report.resolved reach the durable event stream, without the notes.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest
from admin_support import grant_admin_from_cli
from litestar.testing import TestClient
from ws_support import assert_pong_next, connected, expect_close

from conftest import Account, App, make_app
from contract import api_error, assert_error, bearer
from event_support import read_events, relay
from socius.settings import Settings

REPORTS_PER_HOUR = 6


@pytest.fixture
def app(make_settings: Callable[..., Settings]) -> App:
    # A long window: no token comes back while a test runs.
    return make_app(make_settings(limit_reports=REPORTS_PER_HOUR, limit_reports_seconds=3600))


@pytest.fixture
def admin(app: App, http: TestClient[Any], register: Callable[..., Account]) -> Account:
    account = register()
    grant_admin_from_cli(app, http, account.id)
    return account


def _group(owner: Account, *others: Account) -> str:
    return owner.client.create_group("g", [o.id for o in others]).id


def _say(sender: Account, conversation: str, body: str = "hello") -> str:
    return sender.client.send_message(conversation, body, client_msg_id=secrets.token_hex(8)).id


def _report(account: Account, target: str, target_id: str, **extra: Any) -> Any:
    return account.client.raw(
        "POST",
        "/v1/reports",
        json={"target": target, "id": target_id, "reason": "spam", **extra},
    )


# ---------------------------------------------------------------------------- reporting


def test_a_user_reports_a_message_they_can_see_and_nothing_else(
    register: Callable[..., Account], admin: Account
) -> None:
    ada, bob, eve = register(), register(), register()
    group = _group(ada, bob)
    message = _say(bob, group, "buy cheap pills")

    made = ada.client.report("message", message, "spam", note="third time today")
    assert (made.target, made.target_id, made.reason) == ("message", message, "spam")
    assert (made.note, made.status) == ("third time today", "open")

    # Not a member of the conversation: the message does not exist for eve.
    assert_error(_report(eve, "message", message), 404, "message_not_found")
    # Unknown ids, malformed ids, one's own message.
    assert_error(_report(ada, "message", "123456789"), 404, "message_not_found")
    assert_error(_report(ada, "message", "0"), 404, "message_not_found")
    own = _say(ada, group)
    assert_error(_report(ada, "message", own), 422, "cannot_report_self")
    # A deleted message is gone for the reporter too.
    gone = _say(bob, group, "oops")
    bob.client.request("DELETE", f"/v1/conversations/{group}/messages/{gone}")
    assert_error(_report(ada, "message", gone), 404, "message_not_found")

    # The administrator sees who, what, why, and the message as it is.
    [listed] = [r for r in admin.client.admin.reports().items if r.id == made.id]
    assert (listed.reporter_id, listed.user_id, listed.conversation_id) == (
        ada.id,
        bob.id,
        group,
    )
    assert listed.message is not None
    assert (listed.message.body, listed.message.deleted) == ("buy cheap pills", False)
    assert listed.rule is None


def test_a_user_reports_a_visible_user_and_not_across_a_block(
    register: Callable[..., Account],
) -> None:
    ada, bob, cat = register(), register(), register()
    made = ada.client.report("user", bob.id, "harassment")
    assert (made.target, made.target_id, made.status) == ("user", bob.id, "open")
    assert_error(_report(ada, "user", ada.id), 422, "cannot_report_self")
    assert_error(_report(ada, "user", "987654321"), 404, "user_not_found")
    cat.client.block(ada.id)  # cat blocked ada: cat does not exist for ada
    assert_error(_report(ada, "user", cat.id), 404, "user_not_found")
    ada.client.block(bob.id)  # and the other way round
    error = api_error(ada.client.report, "user", bob.id, "spam")
    assert (error.status, error.code) == (404, "user_not_found")


def test_reporting_again_while_open_answers_the_open_report(
    register: Callable[..., Account], admin: Account
) -> None:
    ada, bob = register(), register()
    first = _report(ada, "user", bob.id, note="first")
    assert first.status_code == 201, first.text
    again = _report(ada, "user", bob.id, note="second", reason="hate")
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert (again.json()["note"], again.json()["reason"]) == ("first", "spam")
    mine = [r for r in admin.client.admin.reports(status="open").items if r.reporter_id == ada.id]
    assert len(mine) == 1
    # Once resolved, a new report may be made.
    admin.client.admin.resolve_report(first.json()["id"], "dismiss")
    third = _report(ada, "user", bob.id)
    assert third.status_code == 201, third.text
    assert third.json()["id"] != first.json()["id"]


def test_bad_report_input_is_refused(
    http: TestClient[Any], register: Callable[..., Account]
) -> None:
    ada, bob = register(), register()
    headers = bearer(ada.auth.access_token)
    for body in (
        {"target": "group", "id": bob.id, "reason": "spam"},
        {"target": "user", "id": bob.id, "reason": "boring"},
        {"target": "user", "id": bob.id, "reason": "spam", "note": "x" * 1001},
        {"target": "user", "id": bob.id, "reason": "spam", "note": "bell\x07"},
        {"target": "user", "id": "x" * 30, "reason": "spam"},
        {"target": "user", "id": bob.id, "reason": "spam", "extra": 1},
        {"target": "user", "reason": "spam"},
    ):
        assert_error(http.post("/v1/reports", json=body, headers=headers), 422)
    assert_error(
        http.post("/v1/reports", json={"target": "user", "id": bob.id, "reason": "spam"}), 401
    )


def test_reports_are_rate_limited_per_user(register: Callable[..., Account]) -> None:
    ada, other = register(), register()
    targets = [register() for _ in range(REPORTS_PER_HOUR + 1)]
    for target in targets[:REPORTS_PER_HOUR]:
        assert _report(ada, "user", target.id).status_code == 201
    refused = _report(ada, "user", targets[-1].id)
    error = assert_error(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) >= 1
    assert error["details"]["retry_after"] >= 1
    # Also for what does not exist: the limit is taken before looking.
    assert_error(_report(ada, "user", "987654321"), 429, "rate_limited")
    # Another user has a bucket of their own.
    assert _report(other, "user", targets[-1].id).status_code == 201


# ---------------------------------------------------------------------------- administrators


def test_non_administrators_are_refused(
    http: TestClient[Any], register: Callable[..., Account]
) -> None:
    ada, bob = register(), register()
    report = ada.client.report("user", bob.id, "spam")
    headers = bearer(ada.auth.access_token)
    assert_error(http.get("/v1/admin/reports", headers=headers), 403, "admin_required")
    assert_error(http.get(f"/v1/admin/reports/{report.id}", headers=headers), 403, "admin_required")
    resolve = f"/v1/admin/reports/{report.id}/resolve"
    assert_error(
        http.post(resolve, json={"action": "dismiss"}, headers=headers), 403, "admin_required"
    )
    error = api_error(ada.client.admin.resolve_report, report.id, "dismiss")
    assert (error.status, error.code) == (403, "admin_required")


def test_listing_pages_newest_first_by_status(
    register: Callable[..., Account], admin: Account
) -> None:
    ada = register()
    made = [ada.client.report("user", register().id, "spam").id for _ in range(5)]
    admin.client.admin.resolve_report(made[1], "dismiss")
    seen = [r.id for r in admin.client.admin.iter_reports(limit=2) if r.id in made]
    assert seen == list(reversed(made))
    page = admin.client.admin.reports(limit=2)
    assert len(page.items) == 2
    assert page.next_cursor
    still_open = [r.id for r in admin.client.admin.iter_reports(status="open") if r.id in made]
    assert still_open == [made[4], made[3], made[2], made[0]]
    resolved = admin.client.admin.reports(status="resolved").items
    assert [r.id for r in resolved if r.id in made] == [made[1]]
    assert resolved[0].action == "dismiss"
    assert resolved[0].resolved_by == admin.id


def test_bad_admin_input_is_refused(
    http: TestClient[Any], register: Callable[..., Account], admin: Account
) -> None:
    headers = bearer(admin.auth.access_token)
    assert_error(http.get("/v1/admin/reports?status=maybe", headers=headers), 422)
    assert_error(http.get("/v1/admin/reports?limit=0", headers=headers), 422)
    assert_error(
        http.get("/v1/admin/reports?cursor=bm9wZQ", headers=headers), 400, "invalid_cursor"
    )
    for path in ("/v1/admin/reports/123", "/v1/admin/reports/abc"):
        assert_error(http.get(path, headers=headers), 404, "report_not_found")
        assert_error(
            http.post(path + "/resolve", json={"action": "dismiss"}, headers=headers),
            404,
            "report_not_found",
        )
    report = register().client.report("user", register().id, "spam")
    resolve = f"/v1/admin/reports/{report.id}/resolve"
    assert_error(http.post(resolve, json={"action": "ban"}, headers=headers), 422)
    assert_error(http.post(resolve, json={"action": "dismiss", "x": 1}, headers=headers), 422)
    # A report of a user has no message to delete.
    assert_error(
        http.post(resolve, json={"action": "delete_message"}, headers=headers),
        422,
        "invalid_action",
    )


def _audit(admin: Account, report_id: str) -> list[Any]:
    return admin.client.admin.audit(target=report_id).items


def test_dismiss_closes_the_report_and_is_audited(
    register: Callable[..., Account], admin: Account
) -> None:
    ada, bob = register(), register()
    report = ada.client.report("user", bob.id, "spam")
    done = admin.client.admin.resolve_report(report.id, "dismiss", note="not spam")
    assert (done.status, done.action, done.resolution_note) == ("resolved", "dismiss", "not spam")
    assert done.resolved_by == admin.id
    assert done.resolved_at is not None
    [entry] = _audit(admin, report.id)
    assert (entry.action, entry.actor_id, entry.target_type) == (
        "report.resolve",
        admin.id,
        "report",
    )
    assert entry.details["action"] == "dismiss"
    assert entry.details["reason"] == "not spam"
    assert entry.details["user_id"] == bob.id
    # Resolved once only.
    error = api_error(admin.client.admin.resolve_report, report.id, "dismiss")
    assert (error.status, error.code) == (409, "report_resolved")
    assert len(_audit(admin, report.id)) == 1
    assert admin.client.admin.user(bob.id).status == "active"  # nothing was done to bob


def test_delete_message_deletes_it_for_everyone_and_is_audited(
    register: Callable[..., Account], admin: Account
) -> None:
    ada, bob, cat = register(), register(), register()
    group = _group(ada, bob, cat)
    message = _say(bob, group, "something vile")
    report = ada.client.report("message", message, "hate")
    done = admin.client.admin.resolve_report(report.id, "delete_message")
    assert (done.status, done.action) == ("resolved", "delete_message")
    assert done.message is not None
    assert (done.message.deleted, done.message.body) == (True, None)
    for member in (ada, bob, cat):
        [seen] = [m for m in member.client.messages(group) if m.id == message]
        assert (seen.deleted, seen.body) == (True, None)
    [entry] = _audit(admin, report.id)
    assert entry.details["action"] == "delete_message"
    assert entry.details["report_target_id"] == message
    assert entry.details["message_deleted"] is True
    # The reported text is gone from the report too.
    listed = admin.client.admin.report(report.id)
    assert listed.message is not None
    assert listed.message.body is None


def test_disable_user_disables_the_sender_closes_sockets_and_is_audited(
    http: TestClient[Any], register: Callable[..., Account], admin: Account
) -> None:
    ada, bob, cat = register(), register(), register()
    group = _group(ada, bob, cat)
    message = _say(bob, group, "spam spam spam")
    report = ada.client.report("message", message, "spam")
    with (
        connected(http, bob.auth.access_token) as (bob_ws, _, _),
        connected(http, cat.auth.access_token) as (cat_ws, _, _),
    ):
        done = admin.client.admin.resolve_report(report.id, "disable_user", note="spammer")
        expect_close(bob_ws, 4401)
        assert_pong_next(cat_ws)
    assert (done.status, done.action) == ("resolved", "disable_user")
    assert_error(http.get("/v1/me", headers=bearer(bob.auth.access_token)), 401)
    assert admin.client.admin.user(bob.id).status == "disabled"
    [entry] = _audit(admin, report.id)
    assert (entry.details["action"], entry.details["user_disabled"]) == ("disable_user", True)
    # The account change has its own entry, as when disabled from /v1/admin/users.
    [disabled] = admin.client.admin.audit(target=bob.id, action="user.disable").items
    assert (disabled.actor_id, disabled.details["reason"]) == (admin.id, "spammer")


def test_reports_reach_the_event_stream_without_their_notes(
    app: App, http: TestClient[Any], register: Callable[..., Account], admin: Account
) -> None:
    ada, bob = register(), register()
    report = ada.client.report("user", bob.id, "harassment", note="a private note")
    admin.client.admin.resolve_report(report.id, "dismiss", note="a resolution note")
    relay(app, http)
    events = read_events(http, admin.auth.access_token)
    created = [e for e in events if e["type"] == "report.created"]
    resolved = [e for e in events if e["type"] == "report.resolved"]
    assert [e["data"]["report_id"] for e in created] == [report.id]
    assert created[0]["data"]["actor_id"] == ada.id
    assert created[0]["data"]["user_id"] == bob.id
    assert created[0]["data"]["reason"] == "harassment"
    assert [e["data"]["report_id"] for e in resolved] == [report.id]
    assert resolved[0]["data"]["action"] == "dismiss"
    assert any(e["type"] == "admin.report_resolve" for e in events)
    text = str(events)
    assert "a private note" not in text
    assert "a resolution note" not in text


def test_erasure_removes_the_notes_by_and_about_the_account(
    register: Callable[..., Account], admin: Account
) -> None:
    ada, bob, cat = register(), register(), register()
    by_ada = ada.client.report("user", bob.id, "spam", note="ada wrote this")
    about_bob = cat.client.report("user", bob.id, "hate", note="bob said something")
    about_cat = ada.client.report("user", cat.id, "other", note="ada wrote this too")
    ada.client.delete_me(ada.password)
    bob.client.delete_me(bob.password)
    notes = {r.id: r.note for r in admin.client.admin.iter_reports()}
    assert notes[by_ada.id] is None
    assert notes[about_bob.id] is None
    assert notes[about_cat.id] is None  # ada wrote it: ada is erased
    still = cat.client.report("user", register().id, "spam", note="cat's own")
    assert admin.client.admin.report(still.id).note == "cat's own"


def test_the_export_holds_the_reports_made_and_none_about_the_caller(
    register: Callable[..., Account], admin: Account
) -> None:
    ada, bob, cat = register(), register(), register()
    group = _group(bob, ada)
    message = _say(bob, group, "buy cheap pills")
    on_bob = ada.client.report("user", bob.id, "harassment", note="ada's words")
    on_message = ada.client.report("message", message, "spam")
    cat.client.report("user", ada.id, "hate", note="cat's words about ada")
    admin.client.admin.resolve_report(on_bob.id, "dismiss", note="an admin's note")

    made = ada.client.export()["reports"]

    assert [(r["id"], r["target"], r["target_id"], r["reason"]) for r in made] == [
        (on_bob.id, "user", bob.id, "harassment"),
        (on_message.id, "message", message, "spam"),
    ]
    assert [(r["note"], r["status"]) for r in made] == [("ada's words", "resolved"), (None, "open")]
    assert made[0]["resolved_at"] is not None
    assert made[1]["resolved_at"] is None
    text = str(ada.client.export())
    # Neither the report about ada (nor who made it) nor the administrator's note.
    assert "cat's words about ada" not in text
    assert cat.id not in text
    assert "an admin's note" not in text
    # Bob's export does not hold ada's report on him.
    assert "ada's words" not in str(bob.client.export())
    assert bob.client.export()["reports"] == []
