"""The admin API (/v1/admin) and its audit log, through the SDK and HTTP, on both stacks.

- Every /v1/admin operation in the OpenAPI document refuses a non-administrator with 403
  ``admin_required`` and lets an administrator through; a revoked administrator is refused
  at the very next request.
- Accounts page newest first with search and filters; disabling ends every session and
  closes the account's sockets at once; enabling lets it log in again.
- Every action writes exactly one audit entry (none when nothing changed), with who, what,
  on what, why, the request id and the client address; the log pages and filters.
- The last active administrator cannot be removed, even by two administrators at once.
- Erasure: the audit log keeps ids, and loses names, addresses and reasons about the erased.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import Callable
from typing import Any

import pytest
from admin_support import grant_admin_from_cli
from litestar.testing import TestClient
from ws_support import assert_pong_next, connected, expect_close

from conftest import PASSWORD, Account, App, unique_name
from contract import api_error, assert_error, bearer
from served import serving
from socius.api.app import build_litestar
from socius.bootstrap import build
from socius.client import AdminUser, ApiError, AuditEntry, Client
from socius.services.audit import Actor
from socius.settings import load_settings


def _admin_operations() -> list[tuple[str, str]]:
    """Every (method, path) under /v1/admin in the OpenAPI document: new admin routes
    are covered by the tests below without anyone listing them. (Building an app opens
    nothing: no database, cache or bus is touched.)"""
    wiring = build(load_settings({}, data_dir=tempfile.gettempdir()))
    document = build_litestar(wiring.container, wiring.metrics).openapi_schema.to_schema()
    return sorted(
        (method.upper(), path)
        for path, item in document["paths"].items()
        if path.startswith("/v1/admin")
        for method in item
        if method in ("get", "put", "post", "patch", "delete")
    )


ADMIN_OPERATIONS = _admin_operations()


@pytest.fixture
def admin(app: App, http: TestClient[Any], register: Callable[..., Account]) -> Account:
    """An administrator, made as the operator makes the first one (the command line)."""
    account = register()
    grant_admin_from_cli(app, http, account.id)
    return account


def _url(path: str, user_id: str) -> str:
    return re.sub(r"\{[^}]+\}", user_id, path)


def test_the_admin_routes_are_documented() -> None:
    assert ("GET", "/v1/admin/users") in ADMIN_OPERATIONS
    assert ("GET", "/v1/admin/audit") in ADMIN_OPERATIONS
    assert ("POST", "/v1/admin/users/{user_id}/disable") in ADMIN_OPERATIONS


@pytest.mark.parametrize(("method", "path"), ADMIN_OPERATIONS)
def test_every_admin_route_needs_an_administrator(
    http: TestClient[Any],
    register: Callable[..., Account],
    admin: Account,
    method: str,
    path: str,
) -> None:
    user, target = register(), register()
    url = _url(path, target.id)  # an account that exists: a 404 cannot hide the refusal
    response = http.request(method, url, headers=bearer(user.auth.access_token))
    assert_error(response, 403, "admin_required")
    # Not even a malformed request tells a non-administrator anything more.
    response = http.request(
        method, url + "?limit=0&cursor=%21", headers=bearer(user.auth.access_token)
    )
    assert_error(response, 403, "admin_required")
    # Without a token: 401, as everywhere.
    assert_error(http.request(method, url), 401)

    answered = http.request(method, url, headers=bearer(admin.auth.access_token))
    if "{user_id}" in path or ("{" not in path and method == "GET"):
        assert answered.status_code == 200, answered.text
    else:  # a webhook's id, a body: the gate lets the administrator through to those checks
        assert answered.status_code in (404, 422), answered.text


def test_me_says_who_is_an_administrator_and_public_profiles_never_do(
    app: App, http: TestClient[Any], register: Callable[..., Account]
) -> None:
    ada, bob = register(), register()
    assert ada.client.me().is_admin is False
    assert http.get("/v1/me", headers=bearer(ada.auth.access_token)).json()["is_admin"] is False
    grant_admin_from_cli(app, http, ada.id)
    assert ada.client.me().is_admin is True
    for path in (
        f"/v1/users/{ada.id}",
        f"/v1/users/by-username/{ada.username}",
        f"/v1/users/search?q={ada.username}",
    ):
        response = http.get(path, headers=bearer(bob.auth.access_token))
        assert response.status_code == 200, response.text
        assert "is_admin" not in response.text, path


def test_a_revoked_administrator_is_refused_at_the_next_request(
    register: Callable[..., Account], admin: Account
) -> None:
    other = register()
    admin.client.admin.grant_admin(other.id)
    assert other.client.admin.users(limit=1).items
    admin.client.admin.revoke_admin(other.id, reason="stepping down")
    for call in (other.client.admin.users, other.client.admin.audit):
        error = api_error(call)
        assert (error.status, error.code) == (403, "admin_required")
    assert other.client.me().is_admin is False  # the account itself goes on


def test_the_admin_check_costs_one_lookup_of_the_callers_row(
    register: Callable[..., Account], admin: Account, count_queries: Callable[[], Any]
) -> None:
    """docs/admin.md: the flag is read on every admin request, not cached: one statement
    (the caller's row by primary key) before the route's own reads."""
    bob = register()
    admin.client.admin.user(bob.id)  # anything lazily set up is set up
    with count_queries() as statements:
        assert admin.client.admin.user(bob.id).id == bob.id
    # The check, the account, its last login.
    assert len(statements) == 3, statements
    assert statements[0].lstrip().upper().startswith("SELECT"), statements[0]
    assert "users" in statements[0]
    assert "sessions" not in statements[0]


# ---------------------------------------------------------------------------- accounts


def test_accounts_page_newest_first_with_search_and_filters(
    register: Callable[..., Account], admin: Account
) -> None:
    tag = unique_name("pg")[:20]
    made = [register(f"{tag}_{i}", email=f"{tag}_{i}@example.org") for i in range(5)]
    newest_first = [a.id for a in reversed(made)]

    seen: list[AdminUser] = []
    cursor = None
    pages = 0
    while True:
        page = admin.client.admin.users(q=tag, limit=2, cursor=cursor)
        assert len(page.items) <= 2
        seen += page.items
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert [u.id for u in seen] == newest_first
    assert pages == 3
    first = seen[-1]
    assert (first.username, first.email) == (f"{tag}_0", f"{tag}_0@example.org")
    assert (first.status, first.is_active, first.is_admin) == ("active", True, False)
    assert first.last_login_at is not None  # registering logged it in
    assert [u.id for u in admin.client.admin.iter_users(q=tag, limit=3)] == newest_first

    # By email, by exact id, by status and by the administrator flag.
    assert [u.id for u in admin.client.admin.users(q=f"{tag}_3@example").items] == [made[3].id]
    assert [u.id for u in admin.client.admin.users(q=made[2].id).items] == [made[2].id]
    admin.client.admin.disable_user(made[1].id)
    disabled = admin.client.admin.users(q=tag, status="disabled").items
    assert [u.id for u in disabled] == [made[1].id]
    assert made[1].id not in [u.id for u in admin.client.admin.users(q=tag, status="active").items]
    admins = [u.id for u in admin.client.admin.iter_users(is_admin=True)]
    assert admin.id in admins
    assert not {a.id for a in made} & set(admins)
    assert admin.client.admin.user(made[4].id).username == f"{tag}_4"


def test_bad_list_input_is_refused(http: TestClient[Any], admin: Account) -> None:
    headers = bearer(admin.auth.access_token)
    assert_error(http.get("/v1/admin/users?cursor=bm9wZQ", headers=headers), 400, "invalid_cursor")
    assert_error(http.get("/v1/admin/users?limit=101", headers=headers), 422)
    assert_error(http.get("/v1/admin/users?status=gone", headers=headers), 422)
    assert_error(http.get("/v1/admin/audit?actor=bob", headers=headers), 422)
    assert_error(http.get("/v1/admin/audit?action=DROP", headers=headers), 422)
    for path in ("/v1/admin/users/123", "/v1/admin/users/abc", "/v1/admin/users/0"):
        assert_error(http.get(path, headers=headers), 404, "user_not_found")
        assert_error(http.post(path + "/disable", headers=headers), 404, "user_not_found")


def test_disabling_closes_every_socket_of_the_account_at_once(
    http: TestClient[Any], register: Callable[..., Account], admin: Account
) -> None:
    victim, bystander = register(), register()
    second = Client(http=http)
    second.login(victim.username, PASSWORD)
    assert second.access_token is not None
    with (
        connected(http, victim.auth.access_token) as (ws_1, _, _),
        connected(http, second.access_token) as (ws_2, _, _),
        connected(http, bystander.auth.access_token) as (ws_3, _, _),
    ):
        shown = admin.client.admin.disable_user(victim.id, reason="spam")
        expect_close(ws_1, 4401)
        expect_close(ws_2, 4401)
        assert_pong_next(ws_3)
    assert (shown.status, shown.is_active) == ("disabled", False)
    for token in (victim.auth.access_token, second.access_token):
        assert_error(http.get("/v1/me", headers=bearer(token)), 401)
    login = {"username": victim.username, "password": PASSWORD}
    assert_error(http.post("/v1/auth/login", json=login), 401, "invalid_credentials")
    # Gone from everyone's search while disabled.
    found = bystander.client.search_users(victim.username).items
    assert victim.id not in [u.id for u in found]

    entry = admin.client.admin.audit(target=victim.id).items[0]
    assert (entry.action, entry.details) == (
        "user.disable",
        {"sessions_revoked": 2, "reason": "spam"},
    )

    assert admin.client.admin.enable_user(victim.id).status == "active"
    assert http.post("/v1/auth/login", json=login).status_code == 200


# ---------------------------------------------------------------------------- audit log


def test_every_action_is_audited_once_with_who_what_why_and_where(
    http: TestClient[Any], register: Callable[..., Account], admin: Account
) -> None:
    bob = register()
    headers = {**bearer(admin.auth.access_token), "X-Request-ID": "req-disable-1"}
    response = http.post(f"/v1/admin/users/{bob.id}/disable", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "req-disable-1"
    actions = admin.client.admin
    actions.enable_user(bob.id, reason="appeal granted")
    actions.grant_admin(bob.id, reason="new moderator")
    actions.revoke_admin(bob.id)
    # Nothing changes, nothing is written.
    actions.enable_user(bob.id)
    actions.revoke_admin(bob.id)

    entries = actions.audit(target=bob.id).items
    assert [e.action for e in entries] == [
        "user.revoke_admin",
        "user.grant_admin",
        "user.enable",
        "user.disable",
    ]
    for e in entries:
        assert (e.via, e.actor_id, e.actor_username) == ("api", admin.id, admin.username)
        assert (e.target_type, e.target_id, e.target_username) == ("user", bob.id, bob.username)
        assert e.ip  # the test client's address
    disable = entries[-1]
    assert disable.request_id == "req-disable-1"
    assert disable.details == {"sessions_revoked": 1}
    assert entries[2].details == {"reason": "appeal granted"}
    assert entries[1].details == {"reason": "new moderator"}
    assert entries[0].details == {}
    assert len({e.request_id for e in entries}) == 4
    assert [e.created_at for e in entries] == sorted((e.created_at for e in entries), reverse=True)

    # The command line's grant that made the administrator, by `actor=cli`.
    made = actions.audit(actor="cli", target=admin.id).items
    assert [(e.action, e.via, e.actor_id, e.ip) for e in made] == [
        ("user.grant_admin", "cli", None, None)
    ]
    assert [e.id for e in actions.audit(actor=admin.id, action="user.enable").items] == [
        entries[2].id
    ]
    assert actions.audit(actor="9223372036854775807").items == []
    assert actions.audit(target="0").items == []


def test_the_audit_log_pages_newest_first(register: Callable[..., Account], admin: Account) -> None:
    users = [register() for _ in range(3)]
    for u in users:
        admin.client.admin.disable_user(u.id)
    ids: list[str] = []
    entries: list[AuditEntry] = []
    cursor = None
    while True:
        page = admin.client.admin.audit(actor=admin.id, limit=2, cursor=cursor)
        entries += page.items
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    ids = [e.target_id or "" for e in entries]
    assert ids == [u.id for u in reversed(users)]
    assert [e.id for e in admin.client.admin.iter_audit(actor=admin.id, limit=1)] == [
        e.id for e in entries
    ]


def test_a_reason_is_bounded_text(
    http: TestClient[Any], register: Callable[..., Account], admin: Account
) -> None:
    bob = register()
    headers = bearer(admin.auth.access_token)
    url = f"/v1/admin/users/{bob.id}/disable"
    assert_error(
        http.post(url, headers=headers, json={"reason": "x" * 501}), 422, "validation_error"
    )
    assert_error(
        http.post(url, headers=headers, json={"reason": "a\x00b"}), 422, "validation_error"
    )
    assert_error(http.post(url, headers=headers, json={"why": "no"}), 422, "unknown_field")
    assert admin.client.admin.user(bob.id).status == "active"  # nothing half-done
    assert admin.client.admin.audit(target=bob.id).items == []
    assert http.post(url, headers=headers, json={"reason": "  "}).status_code == 200
    assert admin.client.admin.audit(target=bob.id).items[0].details == {"sessions_revoked": 1}


# ---------------------------------------------------------------------------- last admin


def test_the_last_administrator_stays(
    app: App, http: TestClient[Any], register: Callable[..., Account], admin: Account
) -> None:
    error = api_error(admin.client.admin.revoke_admin, admin.id)
    assert (error.status, error.code) == (409, "last_admin")
    error = api_error(admin.client.admin.disable_user, admin.id)
    assert (error.status, error.code) == (422, "cannot_target_self")

    # With a second one, either may go, but not both; a disabled one does not count.
    other = register()
    admin.client.admin.grant_admin(other.id)
    other.client.admin.revoke_admin(admin.id, reason="handing over")
    error = api_error(other.client.admin.revoke_admin, other.id)
    assert (error.status, error.code) == (409, "last_admin")
    other.client.admin.grant_admin(admin.id)
    other.client.admin.disable_user(admin.id)
    error = api_error(other.client.admin.revoke_admin, other.id)
    assert (error.status, error.code) == (409, "last_admin")

    # The command line keeps the rule too.
    async def revoke_from_cli() -> None:
        await app.wiring.container.admin.set_admin(Actor.command_line(), int(other.id), False)

    with pytest.raises(Exception, match="last administrator"):
        http.blocking_portal.call(revoke_from_cli)
    assert other.client.me().is_admin is True


async def test_two_administrators_revoking_each_other_at_once_leave_one(app: App) -> None:
    """Served in this loop, so the two requests really overlap (tests/served.py)."""
    admin = app.wiring.container.admin
    async with serving(app) as (sdk, in_flight):
        for _ in range(3):
            a, b = sdk(), sdk()
            a_id = (await a.register(unique_name("adm"), PASSWORD)).user.id
            b_id = (await b.register(unique_name("adm"), PASSWORD)).user.id
            await admin.set_admin(Actor.command_line(), int(a_id), True)
            await a.admin.grant_admin(b_id)
            # Everyone else stands down, so these two are the last.
            async for other in a.admin.iter_users(is_admin=True):
                if other.id not in (a_id, b_id):
                    await a.admin.revoke_admin(other.id)

            results = await asyncio.gather(
                a.admin.revoke_admin(b_id), b.admin.revoke_admin(a_id), return_exceptions=True
            )
            refused = [r for r in results if isinstance(r, ApiError)]
            assert len(refused) == 1, results
            # The loser found it had lost the flag, or was the last one left.
            assert (refused[0].status, refused[0].code) in {
                (403, "admin_required"),
                (409, "last_admin"),
            }
            assert [(await c.me()).is_admin for c in (a, b)].count(True) == 1
        in_flight.assert_overlapped()


# ---------------------------------------------------------------------------- erasure


def test_erasure_keeps_ids_in_the_audit_log_and_nothing_personal(
    register: Callable[..., Account], admin: Account
) -> None:
    bob = register()
    admin.client.admin.disable_user(bob.id, reason="bob@example.org sent spam")
    admin.client.admin.enable_user(bob.id)
    bob.client.login(bob.username, PASSWORD)
    bob.client.delete_me(PASSWORD)

    entries = admin.client.admin.audit(target=bob.id).items
    assert [e.action for e in entries] == ["user.enable", "user.disable"]
    for e in entries:
        assert (e.target_id, e.target_username) == (bob.id, None)
    assert entries[1].details == {"sessions_revoked": 1, "erased": True}
    assert "bob@example.org" not in str(entries)

    # An administrator who erases their own account leaves their id, not their address.
    other = register()
    admin.client.admin.grant_admin(other.id)
    carol = register()
    other.client.admin.disable_user(carol.id)
    other.client.delete_me(PASSWORD)
    entry = admin.client.admin.audit(actor=other.id).items[0]
    assert (entry.action, entry.actor_id, entry.actor_username, entry.ip) == (
        "user.disable",
        other.id,
        None,
        None,
    )
    assert entry.target_username == carol.username
