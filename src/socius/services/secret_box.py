"""Secrets encrypted at rest (TOTP seeds): AES-256-GCM with a key from the settings.

A box is ``version (1) | key id (4) | nonce (12) | ciphertext and tag``. The key id is the
start of the key's SHA-256, so several keys can decrypt (``SOCIUS_MFA_ENCRYPTION_OLD_KEYS``
during a rotation) while the current one (``SOCIUS_MFA_ENCRYPTION_KEY``) encrypts. The
associated data names what the secret belongs to (a user), so a box copied to another row
does not open.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from socius.domain.errors import Forbidden, Unavailable

__all__ = ["SecretBox"]

log = structlog.get_logger("socius.mfa")

_VERSION = b"\x01"
_NONCE = 12


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"socius-secret-box:" + key).digest()[:4]


class SecretBox:
    def __init__(self, load_keys: Callable[[], Sequence[bytes]]) -> None:
        """``load_keys()`` gives the keys, the one to encrypt with first (none: no box);
        it is called once, on first use."""
        self._load = load_keys
        self._keys: dict[bytes, AESGCM] | None = None
        self._current: bytes | None = None

    def _ready(self) -> dict[bytes, AESGCM]:
        if self._keys is None:
            keys = list(self._load())
            self._keys = {_key_id(k): AESGCM(k) for k in keys}
            self._current = _key_id(keys[0]) if keys else None
        return self._keys

    @property
    def available(self) -> bool:
        return bool(self._ready())

    def seal(self, plaintext: bytes, *, context: bytes) -> bytes:
        keys = self._ready()
        if self._current is None:
            raise Forbidden(
                "two-factor sign-in is not configured on this server (SOCIUS_MFA_ENCRYPTION_KEY)",
                code="mfa_not_configured",
            )
        nonce = os.urandom(_NONCE)
        sealed = keys[self._current].encrypt(nonce, plaintext, context)
        return _VERSION + self._current + nonce + sealed

    def open(self, box: bytes, *, context: bytes) -> bytes:
        keys = self._ready()
        kid, nonce, sealed = box[1:5], box[5 : 5 + _NONCE], box[5 + _NONCE :]
        aead = keys.get(kid) if box[:1] == _VERSION else None
        try:
            if aead is None:
                raise InvalidTag
            return aead.decrypt(nonce, sealed, context)
        except InvalidTag:
            # The key that sealed it is not configured (or the row was tampered with).
            log.error("cannot open a stored secret: its key is not configured")
            raise Unavailable(
                "two-factor sign-in is unavailable on this server", code="mfa_unavailable"
            ) from None
