"""A real HTTP server that receives webhooks, for the tests: it checks each delivery's
Standard Webhooks signature with its own code (not socius's), records it, and can be
stopped and started again on the same port, or made to drop a request after reading it
(as a receiver that dies before it answers)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from local_http import close, listen

__all__ = ["Receiver"]


@dataclass
class Received:
    webhook_id: str
    body: dict[str, Any]
    signature_ok: bool


@dataclass
class Receiver:
    secret: str = ""
    port: int = 0
    received: list[Received] = field(default_factory=list)
    drop_next: int = 0  # read, record, and close without answering this many requests
    status: int = 204
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def _verify(self, headers: Any, raw: bytes) -> bool:
        key = base64.b64decode(self.secret.removeprefix("whsec_"))
        signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + raw
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        offered = [s.partition(",")[2] for s in headers["webhook-signature"].split()]
        return any(hmac.compare_digest(expected, s) for s in offered)

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["content-length"]))
                receiver.received.append(
                    Received(
                        self.headers["webhook-id"],
                        json.loads(raw),
                        receiver._verify(self.headers, raw),
                    )
                )
                if receiver.drop_next > 0:
                    receiver.drop_next -= 1
                    self.close_connection = True
                    self.connection.close()
                    return
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return

        self._server = listen(Handler, self.port)
        self.port = self._server.server_address[1]

    def stop(self) -> None:
        server, self._server = self._server, None
        close(server)

    def unique_ids(self) -> list[str]:
        return list(dict.fromkeys(r.webhook_id for r in self.received))
