"""Mail templates (packaged, overridable from a folder) and SMTP URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from socius.domain.mail import Mail, MailTemplate
from socius.mail.message import build_message
from socius.mail.smtp import SmtpServer
from socius.mail.templates import Templates


def test_every_packaged_template_renders_its_values() -> None:
    templates = Templates(common={"app_name": "Chatty", "public_url": "https://c.example"})
    values = {
        "username": "ada",
        "email": "ada@example.org",
        "new_email": "ada@example.com",
        "link": "https://c.example/#x=1&y=2",
        "valid_for": "30 minutes",
        "when": "2030-01-01 12:00 UTC",
    }
    for name in MailTemplate.ALL:
        rendered = templates.render(Mail(to="ada@example.org", template=name, values=values))
        assert "$" not in rendered.subject + rendered.text + rendered.html, name
        assert "Chatty" in rendered.text
        assert "ada" in rendered.text
        assert "&y=2" not in rendered.html  # values are escaped in HTML
        message = build_message(
            rendered, to="ada@example.org", sender="Chatty <no-reply@c.example>"
        )
        assert message.get_body(preferencelist=("html",)) is not None


def test_a_template_in_the_override_folder_wins(tmp_path: Path) -> None:
    (tmp_path / "verify_email.txt").write_text("Subject: Hi $username\n\nGo to $link\n")
    templates = Templates(str(tmp_path))
    rendered = templates.render(
        Mail(to="a@b.org", template="verify_email", values={"username": "ada", "link": "L"})
    )
    assert rendered.subject == "Hi ada"
    assert rendered.text == "Go to L\n"
    assert "ada" in rendered.html  # the packaged HTML: not overridden
    (tmp_path / "password_reset.txt").write_text("no subject line\n")
    with pytest.raises(ValueError, match="Subject"):
        templates.render(Mail(to="a@b.org", template="password_reset"))


def test_a_value_cannot_add_a_header() -> None:
    rendered = Templates().render(
        Mail(to="a@b.org", template="verify_email", values={"app_name": "X\nBcc: evil@x.org"})
    )
    assert "\n" not in rendered.subject


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.org", ("mail.example.org", 587, False, True, None, None)),
        ("smtps://u:p%40ss@mail.example.org", ("mail.example.org", 465, True, False, "u", "p@ss")),
        ("smtp+insecure://127.0.0.1:1025", ("127.0.0.1", 1025, False, False, None, None)),
    ],
)
def test_smtp_urls(url: str, expected: tuple[object, ...]) -> None:
    server = SmtpServer.from_url(url)
    found = (server.host, server.port, server.implicit_tls, server.starttls)
    assert (*found, server.username, server.password) == expected


def test_a_bad_smtp_url_is_refused() -> None:
    with pytest.raises(ValueError, match="smtp"):
        SmtpServer.from_url("http://mail.example.org")
