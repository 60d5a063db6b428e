"""Settings of sign-in providers and passkeys: read from the environment (JSON) or the
TOML file, and refused at start when unsafe or malformed, naming themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from socius.settings import SettingsError, load_settings


def _providers(**provider: object) -> dict[str, str]:
    return {"SOCIUS_OIDC_PROVIDERS": json.dumps({"acme": provider})}


def test_providers_come_from_json_in_the_environment() -> None:
    settings = load_settings(
        _providers(issuer="https://id.example.com", client_id="socius", client_secret="s")
    )
    acme = settings.oidc_providers["acme"]
    assert (acme.issuer, acme.client_id, acme.client_secret) == (
        "https://id.example.com",
        "socius",
        "s",
    )
    assert acme.scopes == ["openid", "email", "profile"]
    # replace() keeps them (it converts the whole struct again).
    assert settings.replace(port=9000).oidc_providers == settings.oidc_providers


def test_providers_come_from_the_toml_file(tmp_path: Path) -> None:
    config = tmp_path / "socius.toml"
    config.write_text(
        '[oidc_providers.google]\nissuer = "https://accounts.google.com"\n'
        'client_id = "c"\ndisplay_name = "Google"\n'
    )
    settings = load_settings({"SOCIUS_CONFIG_FILE": str(config)})
    assert settings.oidc_providers["google"].display_name == "Google"


@pytest.mark.parametrize(
    ("environ", "why"),
    [
        (_providers(issuer="http://id.example.com", client_id="c"), "https"),
        (_providers(issuer="https://id.example.com", client_id=""), "client_id"),
        (_providers(issuer="https://id.example.com", client_id="c", scopes=["email"]), "openid"),
        (_providers(issuer="https://id.example.com"), "client_id"),
        ({"SOCIUS_OIDC_PROVIDERS": "{not json"}, "JSON"),
        (
            {
                "SOCIUS_OIDC_PROVIDERS": json.dumps(
                    {"Bad Name": {"issuer": "https://x.example", "client_id": "c"}}
                )
            },
            "name",
        ),
        ({"SOCIUS_OIDC_STATE_TTL_SECONDS": "0"}, ">= 1"),
        ({"SOCIUS_PASSKEY_CHALLENGE_TTL_SECONDS": "0"}, ">= 1"),
    ],
)
def test_unsafe_or_malformed_providers_fail_at_start(environ: dict[str, str], why: str) -> None:
    with pytest.raises(SettingsError, match="SOCIUS_") as raised:
        load_settings(environ)
    assert why in str(raised.value)


def test_loopback_providers_may_use_http() -> None:
    settings = load_settings(_providers(issuer="http://127.0.0.1:8081", client_id="c"))
    assert "acme" in settings.oidc_providers


def test_passkey_defaults_follow_the_public_url() -> None:
    settings = load_settings({"SOCIUS_PUBLIC_URL": "https://app.example.com/"})
    assert settings.effective_webauthn_rp_id == "app.example.com"
    assert settings.effective_webauthn_origins == ["https://app.example.com"]
    set_ = load_settings(
        {
            "SOCIUS_WEBAUTHN_RP_ID": "example.com",
            "SOCIUS_WEBAUTHN_ORIGINS": "https://a.example.com/, https://b.example.com",
        }
    )
    assert set_.effective_webauthn_rp_id == "example.com"
    assert set_.effective_webauthn_origins == ["https://a.example.com", "https://b.example.com"]
