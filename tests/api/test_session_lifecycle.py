"""The session lifecycle as a hypothesis state machine, driven through the sync SDK.

A plain model says which accounts exist (and their current passwords), which sessions are
live, and which refresh tokens are spent, when, and for which pair. Time moves only when
the model says so (the app runs on the model's clock), so the refresh grace is modelled
exactly: a spent token presented again within the window, while the pair its spending made
is still the session's newest, gets that pair again; otherwise it ends the session. After
every step every access token the model
knows must work on ``GET /v1/me`` exactly when its session is live, and each user's list of
sessions must be exactly the live sessions the model knows.

One app per run: a fresh SQLite file (copied from the suite's migrated template), the
in-process cache, cheap argon2, and login/registration throttles raised out of the way (they
have their own tests; here they would only make the model count failures).
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from litestar.testing import TestClient

from clock import Clock
from conftest import FAST_HASHING, make_app
from socius.client import ApiError, AuthResult, Client
from socius.settings import load_settings

USERNAMES = ["ada", "bob", "cyd"]
PASSWORDS = ["correct horse battery staple", "tr0ub4dor and three", "purple monkey dishwasher"]
NO_THROTTLES = {
    "login_max_failures_per_ip_and_account": 1_000_000,
    "login_max_failures_per_account": 1_000_000,
    "login_max_failures_per_ip": 1_000_000,
    "register_max_per_ip_per_hour": 1_000_000,
}
GRACE = 20  # seconds; the steps of time below (7 s, 30 s) never add up to it exactly


def session_id_of(access_token: str) -> str:
    """The ``sid`` claim of an access token (read, not verified: the server verifies)."""
    payload = access_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["sid"])


@dataclass
class SessionModel:
    username: str
    user_id: str
    sid: str
    access_tokens: list[str]
    refresh_token: str
    live: bool = True


@dataclass
class SpentToken:
    token: str
    session: SessionModel
    spent_at: float  # model seconds
    pair: AuthResult  # what spending it handed out


@dataclass
class UserModel:
    user_id: str
    password: str
    old_passwords: set[str] = field(default_factory=set)


@contextmanager
def expect_error(status: int, codes: set[str] | None = None) -> Iterator[None]:
    """The block must fail with ApiError ``status`` (and one of ``codes``, when given)."""
    with pytest.raises(ApiError) as raised:
        yield
    assert raised.value.status == status, f"expected {status}, got {raised.value}"
    assert codes is None or raised.value.code in codes, f"expected {codes}, got {raised.value}"


class SessionLifecycle(RuleBasedStateMachine):
    def __init__(self, template: Path) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="socius-sessions-"))
        shutil.copy(template, self.dir / "socius.db")
        self.clock = Clock()
        self.seconds = 0.0  # how far the model moved the clock
        app = make_app(
            load_settings(
                {},
                data_dir=str(self.dir),
                log_json=False,
                log_level="warning",
                database_pool_size=2,
                refresh_grace_seconds=GRACE,
                **FAST_HASHING,
                **NO_THROTTLES,
            ),
            clock=self.clock,
        )
        self.http: TestClient[Any] = TestClient(app.asgi)  # type: ignore[arg-type]
        self.http.__enter__()
        self.users: dict[str, UserModel] = {}
        self.sessions: list[SessionModel] = []
        self.spent: list[SpentToken] = []

    def teardown(self) -> None:
        try:
            self.http.__exit__(None, None, None)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    # helpers ---------------------------------------------------------------------------

    def client(self, access_token: str | None = None) -> Client:
        return Client(http=self.http, access_token=access_token)

    def remember(self, username: str, result: AuthResult) -> SessionModel:
        assert result.user.username == username
        sid = session_id_of(result.access_token)
        assert all(s.sid != sid for s in self.sessions), "a session id was handed out twice"
        session = SessionModel(
            username, result.user.id, sid, [result.access_token], result.refresh_token
        )
        self.sessions.append(session)
        return session

    def live_sessions(self, user_id: str) -> list[SessionModel]:
        return [s for s in self.sessions if s.live and s.user_id == user_id]

    def end_user_sessions(self, user_id: str, except_sid: str | None = None) -> None:
        for s in self.sessions:
            if s.user_id == user_id and s.sid != except_sid:
                s.live = False

    def live(self) -> list[SessionModel]:
        return [s for s in self.sessions if s.live]

    def dead(self) -> list[SessionModel]:
        return [s for s in self.sessions if not s.live]

    def wrong_password(self, username: str) -> str:
        return next(p for p in PASSWORDS if p != self.users[username].password)

    # rules -----------------------------------------------------------------------------

    @initialize(username=st.sampled_from(USERNAMES), password=st.sampled_from(PASSWORDS))
    def first_account(self, username: str, password: str) -> None:
        self.register(username, password)

    @rule(username=st.sampled_from(USERNAMES), password=st.sampled_from(PASSWORDS))
    def register(self, username: str, password: str) -> None:
        if username in self.users:
            with expect_error(409, {"username_taken"}):
                self.client().register(username, password)
            return
        result = self.client().register(username, password)
        assert result.user.id not in {u.user_id for u in self.users.values()}
        self.users[username] = UserModel(result.user.id, password)
        self.remember(username, result)

    @rule(username=st.sampled_from(USERNAMES), right=st.booleans())
    def login(self, username: str, right: bool) -> None:
        user = self.users.get(username)
        if user is None or not right:
            password = PASSWORDS[0] if user is None else self.wrong_password(username)
            with expect_error(401, {"invalid_credentials"}):
                self.client().login(username, password)
            return
        result = self.client().login(username, user.password)
        assert result.user.id == user.user_id
        self.remember(username, result)

    @precondition(lambda self: self.live())
    @rule(data=st.data(), second_tab=st.booleans())
    def refresh(self, data: st.DataObject, second_tab: bool) -> None:
        session = data.draw(st.sampled_from(self.live()), label="live session")
        old = session.refresh_token
        result = self.client().refresh(old)
        if second_tab:  # another tab refreshed with the same token: it gets the same pair
            again = self.client().refresh(old)
            assert (again.access_token, again.refresh_token) == (
                result.access_token,
                result.refresh_token,
            )
        assert result.user.id == session.user_id
        assert session_id_of(result.access_token) == session.sid, "refresh changed the session"
        assert result.refresh_token != old
        assert result.access_token not in session.access_tokens
        session.access_tokens.append(result.access_token)
        session.refresh_token = result.refresh_token
        self.spent.append(SpentToken(old, session, self.seconds, result))

    @rule(seconds=st.sampled_from([7, 30]))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds)
        self.seconds += seconds

    @precondition(lambda self: self.spent)
    @rule(data=st.data())
    def replay_spent_refresh_token(self, data: st.DataObject) -> None:
        spent = data.draw(st.sampled_from(self.spent), label="spent token")
        session = spent.session
        owner = self.users.get(session.username)
        erased = owner is None or owner.user_id != session.user_id
        in_grace = (
            session.live
            and self.seconds - spent.spent_at <= GRACE
            and session.refresh_token == spent.pair.refresh_token
        )
        event(f"replay spent token: {'grace' if in_grace else 'reuse'}")
        if in_grace:
            again = self.client().refresh(spent.token)
            assert (again.access_token, again.refresh_token) == (
                spent.pair.access_token,
                spent.pair.refresh_token,
            )
            return
        # Reuse revokes the whole session; a token of an erased account is simply unknown.
        codes = None if erased else {"refresh_token_reused"}
        with expect_error(401, codes):
            self.client().refresh(spent.token)
        session.live = False

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def logout(self, data: st.DataObject) -> None:
        session = data.draw(st.sampled_from(self.live()), label="live session")
        self.client(session.access_tokens[-1]).logout()
        session.live = False

    @precondition(lambda self: self.live())
    @rule(data=st.data(), new_password=st.sampled_from(PASSWORDS), right_current=st.booleans())
    def change_password(self, data: st.DataObject, new_password: str, right_current: bool) -> None:
        session = data.draw(st.sampled_from(self.live()), label="live session")
        client = self.client(session.access_tokens[-1])
        user = self.users[session.username]
        if not right_current:
            with expect_error(403, {"invalid_password"}):
                client.change_password(self.wrong_password(session.username), new_password)
            return
        others = len(self.live_sessions(session.user_id)) - 1
        event(f"password changed: {'other sessions end' if others else 'no other session'}")
        client.change_password(user.password, new_password)
        if new_password != user.password:
            user.old_passwords.add(user.password)
        user.old_passwords.discard(new_password)
        user.password = new_password
        self.end_user_sessions(session.user_id, except_sid=session.sid)

    @precondition(lambda self: self.live())
    @rule(data=st.data(), right_password=st.booleans())
    def delete_account(self, data: st.DataObject, right_password: bool) -> None:
        session = data.draw(st.sampled_from(self.live()), label="live session")
        client = self.client(session.access_tokens[-1])
        user = self.users[session.username]
        if not right_password:
            with expect_error(403, {"invalid_password"}):
                client.delete_me(self.wrong_password(session.username))
            return
        event(f"account erased with {len(self.live_sessions(session.user_id))} live session(s)")
        client.delete_me(user.password)
        del self.users[session.username]
        self.end_user_sessions(session.user_id)
        witness = next(iter(self.live()), None)
        if witness is not None:  # someone still signed in no longer finds the profile
            with expect_error(404, {"user_not_found"}):
                self.client(witness.access_tokens[-1]).get_user(user.user_id)

    @precondition(lambda self: self.dead())
    @rule(data=st.data(), action=st.sampled_from(["refresh", "logout", "password", "delete"]))
    def dead_session_is_refused(self, data: st.DataObject, action: str) -> None:
        session = data.draw(st.sampled_from(self.dead()), label="dead session")
        event(f"dead session: {action}")
        client = self.client(session.access_tokens[-1])
        with expect_error(401):
            if action == "refresh":
                client.refresh(session.refresh_token)
            elif action == "logout":
                client.logout()
            elif action == "password":
                client.change_password(PASSWORDS[0], PASSWORDS[1])
            else:
                client.delete_me(PASSWORDS[0])

    @precondition(lambda self: self.users)
    @rule()
    def check_passwords(self) -> None:
        """The current password logs in (a new live session); old ones no longer do."""
        for username, user in self.users.items():
            for old in sorted(user.old_passwords):
                with expect_error(401, {"invalid_credentials"}):
                    self.client().login(username, old)
            result = self.client().login(username, user.password)
            assert result.user.id == user.user_id
            self.remember(username, result)

    # invariants ------------------------------------------------------------------------

    @invariant()
    def access_tokens_work_iff_session_live(self) -> None:
        for session in self.sessions:
            for token in session.access_tokens:
                client = self.client(token)
                if session.live:
                    me = client.me()
                    assert (me.id, me.username) == (session.user_id, session.username)
                else:
                    with expect_error(401):
                        client.me()

    @invariant()
    def session_lists_match_the_model(self) -> None:
        for user in self.users.values():
            live = self.live_sessions(user.user_id)
            if not live:
                continue
            listed = self.client(live[0].access_tokens[-1]).sessions()
            assert sorted(s.id for s in listed) == sorted(s.sid for s in live)
            assert [s.id for s in listed if s.current] == [live[0].sid]


def test_session_lifecycle(sqlite_template: Path) -> None:
    run_state_machine_as_test(
        lambda: SessionLifecycle(sqlite_template),
        settings=settings(
            max_examples=25,
            stateful_step_count=15,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
