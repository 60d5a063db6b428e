"""The mailer of a cluster with no SMTP server configured: nothing is sent; each mail is
logged (its template and the recipient's domain, never its values) as not sent."""

from __future__ import annotations

import structlog

from socius.domain.mail import Mail

__all__ = ["LogOnlyMailer"]

log = structlog.get_logger("socius.mail")


class LogOnlyMailer:
    async def send(self, mail: Mail) -> None:
        log.warning(
            "mail not sent: SOCIUS_SMTP_URL is not set",
            template=mail.template,
            to_domain=mail.to.rpartition("@")[2],
        )

    async def close(self) -> None:
        return None
