"""Rules for free text from clients.

Each rule is a regular expression that the API also publishes in its OpenAPI document,
so the document says exactly what the server accepts. They are written with explicit
character classes only (no ``\\s``, ``\\w``, ``.`` or ``$``-before-newline tricks), which
Python's ``re`` and JSON Schema's ECMA-262 regexes read the same way, and Python checks
them with ``fullmatch``.
"""

from __future__ import annotations

import re

from socius.domain.errors import InvalidInput

__all__ = [
    "CONTROL",
    "CONTROL_OR_BREAK",
    "WHITESPACE",
    "check_no_control_chars",
    "has_control_chars",
    "visible_text_pattern",
]

WHITESPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
"""Exactly the characters ``str.isspace`` (and so ``str.strip``) takes for whitespace."""
CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
"""C0 controls but tab, newline and carriage return; DEL. PostgreSQL cannot store NUL."""
CONTROL_OR_BREAK = r"\x00-\x1f\x7f"
"""C0 controls (line breaks and tabs too) and DEL."""

_CONTROL = re.compile(f"[{CONTROL}]")
_CONTROL_OR_BREAK = re.compile(f"[{CONTROL_OR_BREAK}]")


def visible_text_pattern(forbidden: str, *, empty: bool = False) -> str:
    """Text of characters outside ``forbidden`` (a class body) with at least one that is
    not whitespace; or, with ``empty``, also the empty string."""
    core = f"[^{forbidden}]*[^{forbidden}{WHITESPACE}][^{forbidden}]*"
    return f"^(?:{core})?$" if empty else f"^{core}$"


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
