"""How mail leaves: SMTP with STARTTLS and AUTH, SMTP over TLS, a server that is down
for a while, and, embedded without SMTP, the outbox folder. The transport does not
depend on the database, so these run on the embedded stack only."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from structlog.testing import capture_logs

from conftest import PASSWORD, make_app, unique_name
from mail_server import SmtpServer, link_token, self_signed
from private_servers import free_port
from socius.client import Client
from socius.settings import Settings

pytestmark = pytest.mark.parametrize("stack", ["sqlite"], indirect=True)


def register_with_email(http: TestClient[Any]) -> str:
    to = f"{unique_name('deliver')}@example.org"
    Client(http=http).register(unique_name(), PASSWORD, email=to)
    return to


def test_starttls_with_login(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    cert = self_signed(tmp_path)
    server = SmtpServer(mode="starttls", cert=cert, login=("mailer", "s3cret/pass")).start()
    try:
        url = server.url.replace("s3cret/pass", "s3cret%2Fpass")  # percent-encoded in the URL
        settings = make_settings(smtp_url=url, smtp_ca_file=str(cert[0]))
        with TestClient(make_app(settings).asgi) as http:  # type: ignore[arg-type]
            to = register_with_email(http)
            mail = server.wait_for(to)[0]
            assert link_token(mail, "verify-email")
    finally:
        server.stop()


def test_tls_from_the_first_byte(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    cert = self_signed(tmp_path)
    server = SmtpServer(mode="tls", cert=cert).start()
    try:
        settings = make_settings(smtp_url=server.url, smtp_ca_file=str(cert[0]))
        with TestClient(make_app(settings).asgi) as http:  # type: ignore[arg-type]
            to = register_with_email(http)
            assert server.wait_for(to)[0].subject.startswith("Confirm your email")
    finally:
        server.stop()


def test_an_untrusted_certificate_is_not_sent_to(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    server = SmtpServer(mode="tls", cert=self_signed(tmp_path)).start()
    try:
        settings = make_settings(smtp_url=server.url)  # the system's CAs only
        with (
            capture_logs() as logs,
            TestClient(make_app(settings).asgi) as http,  # type: ignore[arg-type]
        ):
            response = http.post(
                "/v1/auth/register",
                json={"username": unique_name(), "password": PASSWORD, "email": "x@example.org"},
            )
            assert response.status_code == 201  # the mail never fails the request
            wait_until(lambda: any(e["event"] == "mail deferred" for e in logs))
        assert server.received == []
    finally:
        server.stop()


@pytest.mark.slow
def test_a_mail_waits_while_the_server_is_down(make_settings: Callable[..., Settings]) -> None:
    port = free_port()
    settings = make_settings(smtp_url=f"smtp+insecure://127.0.0.1:{port}")
    with (
        capture_logs() as logs,
        TestClient(make_app(settings).asgi) as http,  # type: ignore[arg-type]
    ):
        to = register_with_email(http)  # answered while nothing listens on the port
        wait_until(lambda: any(e["event"] == "mail deferred" for e in logs))
        server = SmtpServer(port=port).start()
        try:
            mail = server.wait_for(to)[0]  # a retry delivers it
            assert link_token(mail, "verify-email")
        finally:
            server.stop()
    deferred = [e for e in logs if e["event"] == "mail deferred"]
    assert deferred
    assert all("link" not in str(e) and "verify-email=" not in str(e) for e in deferred)
    assert all(e["to_domain"] == "example.org" for e in deferred)


def test_embedded_without_smtp_writes_the_outbox_and_logs_the_link(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    assert settings.smtp_url == ""
    with (
        capture_logs() as logs,
        TestClient(make_app(settings).asgi) as http,  # type: ignore[arg-type]
    ):
        client = Client(http=http)
        to = f"{unique_name('outbox')}@example.org"
        client.register(unique_name(), PASSWORD, email=to)
        outbox = tmp_path / "outbox"
        wait_until(lambda: any(outbox.glob("*.eml")))
        (path,) = outbox.glob("*.eml")
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert message["To"] == to
        body = message.get_body(preferencelist=("plain",))
        assert body is not None
        text = body.get_content()  # type: ignore[attr-defined]
        written = [e for e in logs if e["event"].startswith("mail written")]
        assert len(written) == 1
        link = written[0]["mail_link"]
        assert link in text  # a developer can follow it from the log
        client.verify_email(link.rpartition("verify-email=")[2])
        assert client.me().email_verified


def wait_until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)
