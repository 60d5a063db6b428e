"""Mail templates: ``<name>.txt`` (``Subject: ...`` on its first line, then a blank line,
then the text body) and ``<name>.html``. The packaged ones live beside this module; a
file of the same name in the override folder (``SOCIUS_MAIL_TEMPLATES_DIR``) wins.

Placeholders are ``$name`` / ``${name}`` (Python's ``string.Template``); unknown ones are
left as they are. Values are HTML-escaped in the HTML part.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from socius.domain.mail import Mail

__all__ = ["Rendered", "Templates"]


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


class Templates:
    def __init__(self, override_dir: str = "", *, common: dict[str, str] | None = None) -> None:
        """``common``: values every mail may use (``app_name``, ``public_url``)."""
        self._override = Path(override_dir) if override_dir else None
        self._common = dict(common or {})

    def _source(self, filename: str) -> str:
        if self._override is not None:
            candidate = self._override / filename
            if candidate.is_file():
                return candidate.read_text(encoding="utf-8")
        return resources.files("socius.mail").joinpath("templates", filename).read_text("utf-8")

    def render(self, mail: Mail) -> Rendered:
        values = {**self._common, **mail.values}
        head, _, body = self._source(f"{mail.template}.txt").partition("\n")
        if not head.lower().startswith("subject:"):
            raise ValueError(f"{mail.template}.txt must start with a 'Subject:' line")
        subject = Template(head.split(":", 1)[1].strip()).safe_substitute(values)
        text = Template(body.lstrip("\n")).safe_substitute(values)
        escaped = {key: html.escape(value) for key, value in values.items()}
        page = Template(self._source(f"{mail.template}.html")).safe_substitute(escaped)
        # A subject is one line: a value must not be able to add headers.
        return Rendered(" ".join(subject.split()), text, page)
