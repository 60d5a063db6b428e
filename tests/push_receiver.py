"""A real HTTP server standing in for a push service (Web Push endpoint or the operator's
push gateway), for the tests. It records every request and answers the statuses it is
told to, in order (then ``status``).

``Browser`` is what a browser does when it subscribes: a P-256 key pair and a 16-byte auth
secret; it decrypts a Web Push body (RFC 8291, aes128gcm) with its private key, and checks
a VAPID authorization (RFC 8292) with its own code, not socius's.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from local_http import close, listen

__all__ = ["Browser", "PushReceiver", "Pushed"]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Pushed:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.body)
        return found


@dataclass
class PushReceiver:
    port: int = 0
    received: list[Pushed] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered first, in order
    status: int = 201
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/push") -> str:
        return self.origin + path

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver._lock:
                    receiver.received.append(
                        Pushed(self.path, {k.lower(): v for k, v in self.headers.items()}, raw)
                    )
                    status = receiver.statuses.pop(0) if receiver.statuses else receiver.status
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return

        self._server = listen(Handler, self.port)
        self.port = self._server.server_address[1]

    def stop(self) -> None:
        server, self._server = self._server, None
        close(server)

    def to(self, path: str) -> list[Pushed]:
        with self._lock:
            return [p for p in self.received if p.path == path]


@dataclass
class Browser:
    """A browser's push subscription: its keys, and what it does with a push."""

    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth_secret: bytes = field(default_factory=lambda: os.urandom(16))

    @property
    def p256dh(self) -> str:
        return _b64(
            self.key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )

    @property
    def auth(self) -> str:
        return _b64(self.auth_secret)

    def decrypt(self, pushed: Pushed) -> dict[str, Any]:
        assert pushed.headers["content-encoding"] == "aes128gcm"
        plain = http_ece.decrypt(
            pushed.body, private_key=self.key, auth_secret=self.auth_secret, version="aes128gcm"
        )
        found: dict[str, Any] = json.loads(plain)
        return found


def check_vapid(pushed: Pushed, *, public_key: str, audience: str) -> dict[str, Any]:
    """The VAPID claims of a push, after checking its signature with ``public_key`` (the
    server's, as GET /v1/push/vapid-public-key gives it) and its audience."""
    scheme, _, params = pushed.headers["authorization"].partition(" ")
    assert scheme == "vapid"
    parts = dict(p.strip().split("=", 1) for p in params.split(","))
    assert parts["k"] == public_key
    point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _unb64(parts["k"]))
    claims: dict[str, Any] = jwt.decode(
        parts["t"], point, algorithms=["ES256"], audience=audience, options={"require": ["exp"]}
    )
    return claims
