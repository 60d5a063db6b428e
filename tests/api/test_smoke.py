import pytest

from socius.client import ApiError


def test_register_then_me(register):
    alice = register(email="alice@example.org")
    me = alice.client.me()
    assert me.id == alice.id
    assert me.email == "alice@example.org"


def test_wrong_password_is_401(register, sdk):
    alice = register()
    with pytest.raises(ApiError) as caught:
        sdk().login(alice.username, "not the password at all")
    assert (caught.value.status, caught.value.code) == (401, "invalid_credentials")
