"""Delivery over SMTP with aiosmtplib, one connection per mail.

``SOCIUS_SMTP_URL``:

- ``smtp://user:password@host:587``: STARTTLS, required (a server that does not offer it
  is an error, so credentials never travel in the clear);
- ``smtps://user:password@host:465``: TLS from the first byte;
- ``smtp+insecure://host:25``: no TLS at all, for a relay on the same host or a local
  mail catcher.

User and password are optional and percent-decoded. Certificates are verified against
the system's CAs, or ``SOCIUS_SMTP_CA_FILE`` when set.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiosmtplib
import structlog

from socius.domain.mail import Mail, MailRejected, MailUnavailable
from socius.mail.message import build_message
from socius.mail.templates import Templates

__all__ = ["SmtpMailer", "SmtpServer"]

log = structlog.get_logger("socius.mail")

_DEFAULT_PORTS = {"smtp": 587, "smtps": 465, "smtp+insecure": 25}


@dataclass(frozen=True, slots=True)
class SmtpServer:
    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str | None
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError("an SMTP URL is smtp://, smtps:// or smtp+insecure://host[:port]")
        return cls(
            host=parts.hostname,
            port=parts.port or _DEFAULT_PORTS[scheme],
            implicit_tls=scheme == "smtps",
            starttls=scheme == "smtp",
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


class SmtpMailer:
    def __init__(
        self,
        url: str,
        templates: Templates,
        *,
        sender: str,
        timeout: float = 30.0,
        ca_file: str = "",
    ) -> None:
        self._server = SmtpServer.from_url(url)
        self._templates = templates
        self._sender = sender
        self._timeout = timeout
        self._tls = ssl.create_default_context(cafile=ca_file or None)

    async def send(self, mail: Mail) -> None:
        rendered = self._templates.render(mail)
        message = build_message(rendered, to=mail.to, sender=self._sender)
        server = self._server
        try:
            await aiosmtplib.send(
                message,
                hostname=server.host,
                port=server.port,
                username=server.username,
                password=server.password,
                use_tls=server.implicit_tls,
                start_tls=server.starttls,
                tls_context=self._tls if server.implicit_tls or server.starttls else None,
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            if all(400 <= r.code < 500 for r in exc.recipients):
                raise MailUnavailable(f"recipient deferred: {exc}") from exc
            raise MailRejected(f"recipient refused: {exc}") from exc
        except aiosmtplib.SMTPAuthenticationError as exc:
            # A configuration error: keep the mail while an operator fixes it.
            raise MailUnavailable(f"SMTP authentication failed: {exc.code}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code >= 500:
                raise MailRejected(f"refused by the SMTP server: {exc.code}") from exc
            raise MailUnavailable(f"deferred by the SMTP server: {exc.code}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailUnavailable(f"SMTP server unreachable: {type(exc).__name__}") from exc
        log.info("mail sent", template=mail.template, to_domain=mail.to.rpartition("@")[2])

    async def close(self) -> None:
        return None
