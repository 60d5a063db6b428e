"""The development mailer: each mail is written to ``<data_dir>/outbox/*.eml`` and logged
with its values, links included, so a developer without a mail server can follow them.
(It is the only place where a mailed secret reaches a log; never use it in production.)"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import structlog

from socius.domain.mail import Mail, MailUnavailable
from socius.mail.message import build_message
from socius.mail.templates import Templates

__all__ = ["OutboxMailer"]

log = structlog.get_logger("socius.mail")


class OutboxMailer:
    def __init__(self, folder: str | Path, templates: Templates, *, sender: str) -> None:
        self._folder = Path(folder)
        self._templates = templates
        self._sender = sender

    @property
    def folder(self) -> Path:
        return self._folder

    async def send(self, mail: Mail) -> None:
        rendered = self._templates.render(mail)
        message = build_message(rendered, to=mail.to, sender=self._sender)
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{mail.template}-{secrets.token_hex(4)}.eml"
        path = self._folder / name
        try:
            await asyncio.to_thread(self._write, path, message.as_bytes())
        except OSError as exc:
            raise MailUnavailable(f"cannot write {path}: {exc}") from exc
        log.info(
            "mail written to the outbox (no SMTP server configured)",
            path=str(path),
            to=mail.to,
            subject=rendered.subject,
            **{f"mail_{k}": v for k, v in mail.values.items()},
        )

    def _write(self, path: Path, data: bytes) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(data)
        temporary.replace(path)  # readers never see half a mail

    async def close(self) -> None:
        return None
