"""Outgoing mail: what the services ask to send. Adapters (``socius.mail``) render the
named template with the values and deliver it."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Mail", "MailRejected", "MailTemplate", "MailUnavailable"]


class MailTemplate:
    """The templates the services use; each is ``<name>.txt`` (subject on its first line)
    and ``<name>.html`` in the packaged templates, or in ``SOCIUS_MAIL_TEMPLATES_DIR``."""

    VERIFY_EMAIL = "verify_email"
    PASSWORD_RESET = "password_reset"  # noqa: S105 (a template name)
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 (a template name)
    EMAIL_CHANGED = "email_changed"
    MFA_ENABLED = "mfa_enabled"
    MFA_DISABLED = "mfa_disabled"

    ALL = (
        VERIFY_EMAIL,
        PASSWORD_RESET,
        PASSWORD_CHANGED,
        EMAIL_CHANGED,
        MFA_ENABLED,
        MFA_DISABLED,
    )


@dataclass(frozen=True, slots=True)
class Mail:
    """One mail to one address: a template and the values it is filled with. Values
    holding secrets (a link with a token) are named in ``secret`` and never logged."""

    to: str
    template: str
    values: dict[str, str] = field(default_factory=dict)
    secret: frozenset[str] = frozenset()


class MailUnavailable(Exception):
    """The mail server cannot take the mail now (down, timeout, a 4xx answer): retry."""


class MailRejected(Exception):
    """The mail server refused the mail for good (a 5xx answer): do not retry."""
