"""Rules for free text from clients."""

from __future__ import annotations

import re

from socius.domain.errors import InvalidInput

__all__ = ["check_no_control_chars", "has_control_chars"]

# C0 controls but tab, newline and carriage return; DEL. PostgreSQL cannot store NUL at all.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_OR_BREAK = re.compile(r"[\x00-\x1f\x7f]")


def has_control_chars(value: str, *, allow_newlines: bool = False) -> bool:
    return (_CONTROL if allow_newlines else _CONTROL_OR_BREAK).search(value) is not None


def check_no_control_chars(value: str, *, field: str, allow_newlines: bool = False) -> str:
    if has_control_chars(value, allow_newlines=allow_newlines):
        raise InvalidInput(
            f"{field} contains control characters",
            code="invalid_characters",
            details={"field": field},
        )
    return value
