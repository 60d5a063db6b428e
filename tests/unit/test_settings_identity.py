"""Settings of mail and the second factor fail at start when malformed, naming themselves."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from socius.bootstrap import build
from socius.settings import SettingsError, load_settings

KEY = base64.b64encode(b"k" * 32).decode()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("smtp_url", "http://mail.example.org"),
        ("mfa_encryption_key", "too-short"),
        ("mfa_encryption_key", base64.b64encode(b"k" * 16).decode()),
        ("mfa_encryption_old_keys", "not base64!"),
        ("verify_email_link", "https://x.example/verify"),
        ("password_reset_link", "https://x.example/reset"),
        ("password_reset_ttl_seconds", "10"),
        ("mfa_login_ttl_seconds", "5"),
        ("mfa_max_failures_per_account", "0"),
    ],
)
def test_malformed_values_fail_naming_the_setting(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"SOCIUS_{name.upper()}"):
        load_settings({f"SOCIUS_{name.upper()}": value})


def test_keys_may_be_url_safe_and_unpadded() -> None:
    url_safe = base64.urlsafe_b64encode(b"\xfb" * 32).decode().rstrip("=")
    settings = load_settings(
        {"SOCIUS_MFA_ENCRYPTION_KEY": url_safe, "SOCIUS_MFA_ENCRYPTION_OLD_KEYS": f"{KEY},{KEY}"}
    )
    assert settings.mfa_encryption_old_keys == [KEY, KEY]


def test_the_public_url_defaults_to_the_listening_address() -> None:
    assert load_settings({}).effective_public_url == "http://127.0.0.1:8080"
    custom = load_settings({"SOCIUS_PUBLIC_URL": "https://chat.example.org/"})
    assert custom.effective_public_url == "https://chat.example.org"


def test_an_unreadable_smtp_ca_file_fails_at_start(tmp_path: Path) -> None:
    settings = load_settings(
        {},
        data_dir=str(tmp_path),
        smtp_url="smtps://mail.example.org",
        smtp_ca_file=str(tmp_path / "missing.pem"),
    )
    with pytest.raises(SettingsError, match="SOCIUS_SMTP_CA_FILE"):
        build(settings)
