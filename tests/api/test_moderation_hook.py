"""The moderation hook (docs/moderation.md), through the API, on both stacks.

- The built-in word/regex list rejects (422 ``message_rejected``, nothing stored) or flags
  (stored, and reported by the system), on sends and on edits.
- The link-spam rule: too many links in one message, or links from a new account.
- A pluggable classifier (``module:factory``) decides too; one slower than the time budget,
  or one that raises, lets the message through (fail open) and is counted.
- Bad settings fail at start with a message naming the setting.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from admin_support import grant_admin_from_cli
from litestar.testing import TestClient
from moderation_classifiers import Counting

from conftest import PASSWORD, Account, make_app, unique_name
from contract import assert_error
from served import lifespan
from socius.bootstrap import build
from socius.client import AdminReport, AsyncClient, Client
from socius.settings import Settings, SettingsError, load_settings

Start = Callable[..., Any]


@pytest.fixture
def started(make_settings: Callable[..., Settings]) -> Start:
    """``with started(**settings) as (http, account, admin): ...``"""

    @contextmanager
    def start(**overrides: Any) -> Iterator[tuple[TestClient[Any], Callable[[], Account], Account]]:
        app = make_app(make_settings(**overrides))
        with TestClient(app.asgi) as http:  # type: ignore[arg-type]

            def account() -> Account:
                client = Client(http=http)
                return Account(client, client.register(unique_name(), PASSWORD), PASSWORD)

            admin = account()
            grant_admin_from_cli(app, http, admin.id)
            yield http, account, admin

    return start


def _send(sender: Account, conversation: str, body: str) -> Any:
    return sender.client.raw(
        "POST",
        f"/v1/conversations/{conversation}/messages",
        json={"client_msg_id": secrets.token_hex(8), "body": body},
    )


def _edit(sender: Account, conversation: str, message: str, body: str) -> Any:
    return sender.client.raw(
        "PATCH", f"/v1/conversations/{conversation}/messages/{message}", json={"body": body}
    )


def _pair(account: Callable[[], Account]) -> tuple[Account, Account, str]:
    ada, bob = account(), account()
    group = ada.client.create_group("g", [bob.id]).id
    return ada, bob, group


def _bodies(reader: Account, conversation: str) -> list[str | None]:
    return [m.body for m in reader.client.messages(conversation)]


def _system_reports(admin: Account) -> list[AdminReport]:
    return [r for r in admin.client.admin.iter_reports() if r.reporter_id is None]


def _metric(http: TestClient[Any], name: str, label: str) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(f"{name}{{{label}}}"):
            return float(line.split()[-1])
    return 0.0


# ---------------------------------------------------------------------------- word list


def test_the_word_list_rejects_sends_and_edits(started: Start) -> None:
    with started(
        moderation_blocked_words=["badword", "two words"],
        moderation_blocked_patterns=[r"fr[e3]{2}\s+m[o0]ney"],
    ) as (http, account, admin):
        ada, bob, group = _pair(account)
        for body in ("this is BADWORD!", "say two   words? no: two words", "fr33 money now"):
            error = assert_error(_send(ada, group, body), 422, "message_rejected")
            assert error["details"]["rule"] == "words"
        # Whole words only; nothing else is refused.
        ok = _send(ada, group, "badwordy is fine, and so is free")
        assert ok.status_code == 201, ok.text
        assert _bodies(bob, group) == ["badwordy is fine, and so is free"]
        # Edits are judged the same way; the message keeps its text.
        assert_error(_edit(ada, group, ok.json()["id"], "now a badword"), 422, "message_rejected")
        assert _bodies(bob, group) == ["badwordy is fine, and so is free"]
        assert _system_reports(admin) == []
        assert _metric(http, "moderation_decisions_total", 'decision="reject"') == 4


def test_a_flagged_message_is_stored_and_reported_by_the_system(started: Start) -> None:
    with started(moderation_blocked_words=["badword"], moderation_words_action="flag") as (
        _http,
        account,
        admin,
    ):
        ada, bob, group = _pair(account)
        sent = _send(ada, group, "a badword here")
        assert sent.status_code == 201, sent.text
        assert _bodies(bob, group) == ["a badword here"]
        [report] = _system_reports(admin)
        assert (report.target, report.target_id, report.rule) == (
            "message",
            sent.json()["id"],
            "words",
        )
        assert (report.user_id, report.conversation_id, report.status) == (ada.id, group, "open")
        assert report.message is not None
        assert report.message.body == "a badword here"
        # An edit that brings a listed word in is flagged too.
        clean = _send(ada, group, "clean")
        assert _edit(ada, group, clean.json()["id"], "badword after all").status_code == 200
        flagged = {r.target_id for r in _system_reports(admin)}
        assert flagged == {sent.json()["id"], clean.json()["id"]}
        # The administrator deals with it like any report.
        done = admin.client.admin.resolve_report(report.id, "delete_message")
        assert done.status == "resolved"
        assert _bodies(bob, group)[0] is None


# ---------------------------------------------------------------------------- links


def test_too_many_links_are_flagged_as_spam(started: Start) -> None:
    with started(moderation_max_links=2) as (_http, account, admin):
        ada, _bob, group = _pair(account)
        two = _send(ada, group, "see https://a.example and www.b.example")
        assert two.status_code == 201
        three = _send(ada, group, "https://a.example https://b.example http://c.example/x")
        assert three.status_code == 201
        [report] = _system_reports(admin)
        assert (report.target_id, report.rule, report.reason) == (
            three.json()["id"],
            "links",
            "spam",
        )


def test_links_from_a_new_account_are_rejected(started: Start) -> None:
    with started(moderation_new_account_seconds=3600, moderation_links_action="reject") as (
        _http,
        account,
        _admin,
    ):
        ada, bob, group = _pair(account)  # both made a moment ago
        error = assert_error(
            _send(ada, group, "visit https://spam.example"), 422, "message_rejected"
        )
        assert error["details"]["rule"] == "links"
        assert _send(ada, group, "no links, no problem").status_code == 201
        assert _bodies(bob, group) == ["no links, no problem"]


# ---------------------------------------------------------------------------- classifiers


def test_a_pluggable_classifier_flags_and_rejects(started: Start) -> None:
    with started(moderation_classifier="moderation_classifiers:keywords") as (
        _http,
        account,
        admin,
    ):
        ada, bob, group = _pair(account)
        assert_error(_send(ada, group, "model-reject this"), 422, "message_rejected")
        flagged = _send(ada, group, "model-flag this")
        assert flagged.status_code == 201
        assert _send(ada, group, "fine").status_code == 201
        [report] = _system_reports(admin)
        assert (report.target_id, report.rule, report.reason) == (
            flagged.json()["id"],
            "toy_model",
            "harassment",
        )
        assert _bodies(bob, group) == ["model-flag this", "fine"]


def test_a_slow_classifier_does_not_hold_sends_past_its_budget(started: Start) -> None:
    """The classifier would reject every message, after 30 s: each send goes through,
    so none waited for it beyond the budget."""
    with started(
        moderation_classifier="moderation_classifiers:slow", moderation_classifier_budget_ms=50
    ) as (http, account, admin):
        ada, bob, group = _pair(account)
        for i in range(3):
            sent = _send(ada, group, f"hello {i}")
            assert sent.status_code == 201, sent.text
        message = sent.json()["id"]
        assert _edit(ada, group, message, "edited").status_code == 200
        assert _bodies(bob, group) == ["hello 0", "hello 1", "edited"]
        assert _metric(http, "moderation_classifier_failures_total", 'reason="timeout"') == 4
        assert _system_reports(admin) == []


async def test_sends_are_judged_concurrently_before_their_group(
    make_settings: Callable[..., Settings],
) -> None:
    """Concurrent sends are in the classifier at the same time (it runs per request, not
    inside the group commit), and each goes through once the budget is spent. The app is
    served in this event loop so that the gathered sends really interleave."""
    app = make_app(
        make_settings(
            moderation_classifier="moderation_classifiers:counting",
            moderation_classifier_budget_ms=1000,
        )
    )
    async with lifespan(app.asgi):
        transport = httpx.ASGITransport(app=app.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            ada, bob = AsyncClient(http=http), AsyncClient(http=http)
            await ada.register(unique_name(), PASSWORD)
            me = await bob.register(unique_name(), PASSWORD)
            group = (await ada.create_group("g", [me.user.id])).id
            sent = await asyncio.gather(
                *(
                    ada.send_message(group, f"m{i}", client_msg_id=secrets.token_hex(8))
                    for i in range(8)
                )
            )
            assert sorted(m.body or "" for m in sent) == [f"m{i}" for i in range(8)]
            assert len(await bob.messages(group)) == 8
    assert Counting.most >= 2, Counting.most
    assert Counting.inflight == 0


def test_a_failing_classifier_fails_open(started: Start) -> None:
    with started(moderation_classifier="moderation_classifiers:failing") as (
        http,
        account,
        _admin,
    ):
        ada, bob, group = _pair(account)
        assert _send(ada, group, "hello").status_code == 201
        assert _bodies(bob, group) == ["hello"]
        assert _metric(http, "moderation_classifier_failures_total", 'reason="error"') == 1


def test_the_built_in_rules_decide_before_the_classifier(started: Start) -> None:
    """A word the list rejects never reaches the (slow) classifier: no time-out counted."""
    with started(
        moderation_blocked_words=["badword"],
        moderation_classifier="moderation_classifiers:slow",
    ) as (http, account, _admin):
        ada, _, group = _pair(account)
        assert_error(_send(ada, group, "badword"), 422, "message_rejected")
        assert _metric(http, "moderation_classifier_failures_total", 'reason="timeout"') == 0


# ---------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"moderation_blocked_patterns": ["(unclosed"]}, "SOCIUS_MODERATION_BLOCKED_PATTERNS"),
        ({"moderation_classifier": "no colon"}, "SOCIUS_MODERATION_CLASSIFIER"),
        ({"moderation_classifier_budget_ms": 0}, "SOCIUS_MODERATION_CLASSIFIER_BUDGET_MS"),
        ({"moderation_max_links": -1}, "SOCIUS_MODERATION_MAX_LINKS"),
        ({"moderation_words_action": "ban"}, "SOCIUS_MODERATION_WORDS_ACTION"),
        ({"limit_reports_seconds": 0}, "SOCIUS_LIMIT_REPORTS"),
    ],
)
def test_bad_settings_fail_at_start_naming_the_setting(
    overrides: dict[str, Any], says: str
) -> None:
    with pytest.raises(SettingsError, match=says):
        load_settings({}, data_dir=tempfile.gettempdir(), **overrides)


@pytest.mark.parametrize(
    "spec",
    [
        "no_such_module_here:make",
        "moderation_classifiers:no_such_factory",
        "moderation_classifiers:not_a_classifier",
    ],
)
def test_a_classifier_that_cannot_be_loaded_fails_the_start(spec: str) -> None:
    settings = load_settings({}, data_dir=tempfile.gettempdir(), moderation_classifier=spec)
    with pytest.raises(SettingsError, match="SOCIUS_MODERATION_CLASSIFIER"):
        build(settings)
