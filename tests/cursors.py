"""Cursors as a client could forge them: base64url of any JSON, valid for no list or for one."""

from __future__ import annotations

import base64
import json
from typing import Any

__all__ = ["raw_cursor"]


def raw_cursor(value: Any) -> str:
    """``value`` as JSON, base64url encoded the way socius writes cursors."""
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
