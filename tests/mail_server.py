"""A real SMTP server for tests (aiosmtpd, on a free port of 127.0.0.1): it keeps every
mail it is given, so a test can read the link a flow mailed and follow it.

Plain, STARTTLS with AUTH, or TLS from the first byte (a self-signed certificate for
127.0.0.1 that the client trusts through ``SOCIUS_SMTP_CA_FILE``).
"""

from __future__ import annotations

import datetime
import email
import email.policy
import re
import ssl
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from private_servers import free_port

__all__ = ["Received", "SmtpServer", "link_token", "self_signed"]

WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class Received:
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())  # type: ignore[attr-defined]

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        assert part is not None
        return str(part.get_content())  # type: ignore[attr-defined]


class _Inbox:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.changed = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.changed:
            self.received.append(Received(list(envelope.rcpt_tos), message))
            self.changed.notify_all()
        return "250 OK"


class SmtpServer:
    """``url`` is what ``SOCIUS_SMTP_URL`` should say to reach it."""

    def __init__(
        self,
        *,
        mode: str = "plain",
        cert: tuple[Path, Path] | None = None,
        login: tuple[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.mode = mode
        self.port = port or free_port()
        self._inbox = _Inbox()
        kwargs: dict[str, Any] = {}
        context = None
        if cert is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(cert[0]), str(cert[1]))
        if mode == "starttls":
            kwargs |= {"tls_context": context, "require_starttls": True}
        elif mode == "tls":
            kwargs |= {"ssl_context": context}
        if login is not None:
            kwargs |= {"auth_required": True, "authenticator": _Authenticator(*login)}
        self._controller = Controller(
            self._inbox, hostname="127.0.0.1", port=self.port, server_hostname="127.0.0.1", **kwargs
        )
        self._login = login

    @property
    def url(self) -> str:
        scheme = {"plain": "smtp+insecure", "starttls": "smtp", "tls": "smtps"}[self.mode]
        auth = f"{self._login[0]}:{self._login[1]}@" if self._login else ""
        return f"{scheme}://{auth}127.0.0.1:{self.port}"

    def start(self) -> SmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    @property
    def received(self) -> list[Received]:
        with self._inbox.changed:
            return list(self._inbox.received)

    def wait_for(self, to: str, *, count: int = 1, subject: str = "") -> list[Received]:
        """The first ``count`` mails to ``to`` (whose subject contains ``subject``),
        waiting for them to arrive (the server sends after answering)."""
        deadline = time.monotonic() + WAIT_SECONDS
        with self._inbox.changed:
            while True:
                found = [
                    r
                    for r in self._inbox.received
                    if to.lower() in (x.lower() for x in r.recipients) and subject in r.subject
                ]
                if len(found) >= count:
                    return found[:count]
                left = deadline - time.monotonic()
                assert left > 0, (
                    f"no mail to {to} ({subject!r}) arrived; got {self._inbox.received}"
                )
                self._inbox.changed.wait(left)


class _Authenticator:
    def __init__(self, user: str, password: str) -> None:
        self._user = user.encode()
        self._password = password.encode()

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == self._user
            and data.password == self._password
        )
        return AuthResult(success=ok, handled=False)


def link_token(received: Received, fragment: str) -> str:
    """The token of the link in a mail's text, whose URL holds ``#<fragment>=<token>``
    (the default link shapes; a test that sets its own passes its own fragment)."""
    match = re.search(rf"(\S*{re.escape(fragment)}=(?P<token>[A-Za-z0-9_%-]+))", received.text)
    assert match, received.text
    token = unquote(match.group("token"))
    assert match.group(1) in received.html  # the HTML part links to the same place
    return token


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and localhost) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(IPv4Address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
