"""Redis down: identity keeps working on the database alone, and says so in metrics/readyz."""

from __future__ import annotations

import re

import pytest
from litestar.testing import TestClient

from conftest import PASSWORD, make_app, unique_name
from socius.client import ApiError, Client

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture
def outage(stack, make_settings):
    if stack != "postgres":
        pytest.skip("the cache outage needs the Redis-backed stack")
    app = make_app(make_settings(redis_url=DEAD_REDIS))
    responses = []

    def keep(response):
        responses.append(response)

    with TestClient(app.asgi) as client:
        client.event_hooks["response"].append(keep)
        yield client, responses


def cache_errors(client) -> float:
    text = client.get("/metrics").text
    values = re.findall(r"^cache_errors_total\{[^}]*\} ([0-9.e+]+)$", text, re.MULTILINE)
    return sum(float(v) for v in values)


def test_identity_works_without_redis(outage):
    client, responses = outage
    alice = Client(http=client)
    name = unique_name()
    registered = alice.register(name, PASSWORD, email=f"{name}@example.org")
    assert alice.me().id == registered.user.id

    phone = Client(http=client)
    phone.login(name, PASSWORD)
    spent = phone.refresh_token
    phone.refresh()
    phone.refresh()  # the session moved on: `spent` is past its refresh grace
    assert phone.me().id == registered.user.id
    assert len(alice.sessions()) == 2

    # Refresh reuse still revokes the session, and the revocation holds without the cache.
    with pytest.raises(ApiError) as info:
        Client(http=client).refresh(spent)
    assert info.value.status == 401
    with pytest.raises(ApiError) as info:
        phone.me()
    assert info.value.status == 401

    # Logout: the access token is refused at once (the database answers the check).
    token = alice.access_token
    refresh = alice.refresh_token
    alice.logout()
    for path in ("/v1/me", "/v1/me/sessions"):
        response = client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, response.text
    response = client.post("/v1/auth/refresh", json={"refresh_token": refresh})
    assert response.status_code == 401

    # Wrong passwords are still refused cleanly (the throttle fails open, not shut).
    for _ in range(3):
        response = client.post("/v1/auth/login", json={"username": name, "password": "nope1234"})
        assert response.status_code == 401
    assert Client(http=client).login(name, PASSWORD).user.id == registered.user.id

    assert responses, "the hook saw the traffic"
    assert all(r.status_code < 500 for r in responses), [
        (r.request.url.path, r.status_code) for r in responses if r.status_code >= 500
    ]
    assert cache_errors(client) > 0


def test_revocations_made_during_the_outage_hold(outage):
    client, _ = outage
    alice = Client(http=client)
    name = unique_name()
    alice.register(name, PASSWORD)
    other = Client(http=client)
    other.login(name, PASSWORD)
    alice.revoke_other_sessions()
    with pytest.raises(ApiError) as info:
        other.me()
    assert info.value.status == 401
    alice.change_password(PASSWORD, "a brand new passphrase 9")
    assert alice.me().username == name


def test_readyz_reports_redis_down(outage):
    client, _ = outage
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] != "ok"
    assert client.get("/healthz").status_code == 200
