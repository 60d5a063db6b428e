from socius.client import ApiError


def test_register_then_me(register):
    alice = register(email="alice@example.org")
    me = alice.client.me()
    assert me.id == alice.id
    assert me.email == "alice@example.org"


def test_wrong_password_is_401(register, sdk):
    alice = register()
    try:
        sdk().login(alice.username, "not the password at all")
    except ApiError as exc:
        assert exc.status == 401
        assert exc.code == "invalid_credentials"
    else:
        raise AssertionError("login with a wrong password succeeded")
