"""The pure rules of domain/push.py: which names a body mentions, key checks, back-off."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest

from socius.domain.errors import Forbidden, InvalidInput
from socius.domain.push import check_webpush, mentioned, push_backoff


def test_mentions_are_usernames_after_an_at_sign() -> None:
    assert mentioned("hi @Ada and @bob_2, not me@mail.com nor @@x nor @ab") == {"ada", "bob_2"}
    assert mentioned("@ada.") == {"ada"}
    assert mentioned("(@ada)") == {"ada"}
    assert mentioned("@" + "a" * 33) == set()  # longer than a username
    assert mentioned(None) == set()
    assert len(mentioned(" ".join(f"@user{i:03}" for i in range(80)))) == 50


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_webpush_keys_and_endpoint_are_checked() -> None:
    point, auth = _b64(b"\x04" + b"\x01" * 64), _b64(b"\x02" * 16)
    assert check_webpush("https://push.example/x", point, auth, allow_http=False) == (point, auth)
    with pytest.raises(Forbidden) as insecure:
        check_webpush("http://push.example/x", point, auth, allow_http=False)
    assert insecure.value.code == "insecure_endpoint"
    for p256dh, secret in [(_b64(b"\x03" + b"\x01" * 64), auth), (point, _b64(b"x" * 15))]:
        with pytest.raises(InvalidInput) as bad:
            check_webpush("https://push.example/x", p256dh, secret, allow_http=False)
        assert bad.value.code == "invalid_push_keys"


def test_backoff_doubles_and_is_capped() -> None:
    assert [push_backoff(a, 1.0) for a in (1, 2, 3)] == [
        timedelta(seconds=1),
        timedelta(seconds=2),
        timedelta(seconds=4),
    ]
    assert push_backoff(50, 1.0) == timedelta(seconds=64)


def test_malformed_endpoints_are_refused_not_crashing() -> None:
    point, auth = _b64(b"\x04" + b"\x01" * 64), _b64(b"\x02" * 16)
    for endpoint in [
        "https://[",
        "https://x:99999/",
        "https://u:p@x/",
        "https:///x",
        "https://x/a b",
    ]:
        with pytest.raises(InvalidInput) as bad:
            check_webpush(endpoint, point, auth, allow_http=True)
        assert bad.value.code == "invalid_endpoint"
