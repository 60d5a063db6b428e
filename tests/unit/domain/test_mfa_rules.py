"""The second factor's rules as pure functions: time steps, replay, recovery codes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pyotp

from socius.domain.mfa import (
    RECOVERY_CODE_PATTERN,
    RecoveryCode,
    hash_recovery_code,
    matching_step,
    new_recovery_codes,
    new_totp_secret,
    normalize_recovery_code,
    recovery_code_matches,
)

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
AT = datetime(2030, 1, 1, 12, 0, 10, tzinfo=UTC)


def code(delta_steps: int) -> str:
    return pyotp.TOTP(SECRET).at(AT + timedelta(seconds=30 * delta_steps))


def test_a_code_matches_its_step_and_one_either_side() -> None:
    now = pyotp.TOTP(SECRET).timecode(AT)
    assert matching_step(SECRET, code(0), at=AT, after=None) == now
    assert matching_step(SECRET, code(-1), at=AT, after=None) == now - 1
    assert matching_step(SECRET, code(1), at=AT, after=None) == now + 1
    for far in (-3, -2, 2, 3):
        if code(far) not in {code(-1), code(0), code(1)}:
            assert matching_step(SECRET, code(far), at=AT, after=None) is None


def test_only_steps_after_the_last_used_one_pass() -> None:
    now = pyotp.TOTP(SECRET).timecode(AT)
    assert matching_step(SECRET, code(0), at=AT, after=now) is None  # replay
    assert matching_step(SECRET, code(-1), at=AT, after=now) is None  # older
    assert matching_step(SECRET, code(1), at=AT, after=now) == now + 1
    assert matching_step(SECRET, code(0), at=AT, after=now - 1) == now


def test_malformed_codes_match_nothing() -> None:
    for text in ("", "12345", "1234567", "abcdef", f" {code(0)}", f"{code(0)}\n"):
        assert matching_step(SECRET, text, at=AT, after=None) is None


def test_secrets_are_random_base32_of_160_bits() -> None:
    secrets = {new_totp_secret() for _ in range(20)}
    assert len(secrets) == 20
    assert all(re.fullmatch("[A-Z2-7]{32}", s) for s in secrets)


def test_recovery_codes_are_distinct_and_read_forgivingly() -> None:
    codes = new_recovery_codes()
    assert len(set(codes)) == 10
    for code_ in codes:
        assert re.fullmatch(RECOVERY_CODE_PATTERN, code_)
        normalized = normalize_recovery_code(code_)
        assert normalized == code_.replace("-", "")
        assert normalize_recovery_code(code_.upper().replace("-", "")) == normalized
    assert normalize_recovery_code("o1il-0000-0000-0000") == "0111000000000000"
    assert normalize_recovery_code("abc") is None
    assert normalize_recovery_code("abcd-efgh-jkmn-pqr$") is None


def test_recovery_codes_are_stored_salted() -> None:
    salt_a, salt_b = b"a" * 16, b"b" * 16
    digest = hash_recovery_code("abcdefghjkmnpqrs", salt_a)
    assert digest != hash_recovery_code("abcdefghjkmnpqrs", salt_b)
    stored = RecoveryCode(1, salt_a, digest, None)
    assert recovery_code_matches("abcdefghjkmnpqrs", stored)
    assert not recovery_code_matches("abcdefghjkmnpqrt", stored)
