"""The new identity and abuse-limit settings are checked at start, naming the variable."""

from __future__ import annotations

import pytest

from socius.settings import SettingsError, load_settings


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"refresh_grace_seconds": 301}, "SOCIUS_REFRESH_GRACE_SECONDS"),
        ({"refresh_grace_seconds": -1}, "SOCIUS_REFRESH_GRACE_SECONDS"),
        ({"limit_messages": -1}, "SOCIUS_LIMIT_MESSAGES"),
        ({"limit_groups_seconds": 0}, "SOCIUS_LIMIT_GROUPS"),
        ({"ws_max_connections_per_user": -1}, "SOCIUS_WS_MAX_CONNECTIONS_PER_USER"),
        ({"login_max_failures_per_account": 0}, "SOCIUS_LOGIN_MAX_FAILURES_PER_ACCOUNT"),
        (
            {"login_account_backoff_seconds": 120, "login_account_backoff_max_seconds": 60},
            "SOCIUS_LOGIN_ACCOUNT_BACKOFF_SECONDS",
        ),
    ],
)
def test_bad_values_name_the_setting(overrides: dict[str, int], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings({}, **overrides)


def test_the_environment_sets_them() -> None:
    settings = load_settings({"SOCIUS_LIMIT_MESSAGES": "0", "SOCIUS_REFRESH_GRACE_SECONDS": "5"})
    assert settings.limit_messages == 0
    assert settings.refresh_grace_seconds == 5
