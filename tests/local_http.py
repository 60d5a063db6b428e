"""A local HTTP server on a thread, for the real receivers the tests stand up
(webhook_receiver.py, push_receiver.py): listen on a port (0: any free one; the same port
again after a stop), serve until closed."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["close", "listen"]


def listen(handler: type[BaseHTTPRequestHandler], port: int = 0) -> ThreadingHTTPServer:
    """Serving from a daemon thread; ``server.server_address[1]`` is the port."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def close(server: ThreadingHTTPServer | None) -> None:
    """Stop serving and free the port (nothing when already closed)."""
    if server is not None:
        server.shutdown()
        server.server_close()
