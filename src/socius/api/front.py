"""The front: one pure-ASGI layer doing every HTTP request's common work, once.

In front of Litestar, for each HTTP request:
- **request id**: a well-formed ``X-Request-ID`` is kept, otherwise one is made; it is
  echoed as the ``x-request-id`` response header and readable with
  `current_request_id()` (and in every log line written while handling the request);
- **authentication**: on a route that declares the ``bearer`` security requirement (its
  OpenAPI ``security``; the table is computed once, from the app's routes), the bearer
  token is verified here, before routing parameters are parsed, so a request without a
  valid token gets its 401 whatever else is wrong with it; the `Principal` goes into
  ``scope["state"]``, where the ``principal`` dependency reads it (api/dependencies.py);
- **metrics**: counters and histogram buckets as plain numbers (`HttpStats`);
- **access log**: one preformatted line, buffered (`AccessLog`).

It answers errors itself with the same envelopes and codes as Litestar's exception
handlers (api/errors.py `error_parts`). WebSocket and lifespan scopes pass through.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.utils import normalize_path

from socius.api.dependencies import PRINCIPAL_KEY
from socius.api.errors import error_parts
from socius.domain.errors import Unauthenticated
from socius.observability.access_log import AccessLog
from socius.observability.logging import next_request_id, request_id_var, valid_request_id
from socius.observability.metrics import UNMATCHED, HttpStats
from socius.services.auth import Principal

__all__ = ["Front", "auth_table"]

_ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
_Authenticate = Callable[[str], Awaitable[Principal]]

_AUTHORIZATION = b"authorization"
_REQUEST_ID = b"x-request-id"
_encode = msgspec.json.Encoder().encode
_JSON = (b"content-type", b"application/json")
_PARAM = re.compile(r"\{([^}:]+)(?::([^}]+))?\}")
HEALTHZ = "/healthz"
_HEALTHZ_BODY = {"type": "http.response.body", "body": b'{"status":"ok"}'}
_HEALTHZ_HEADERS = (_JSON, (b"content-length", b"15"))


class AuthTable:
    """Which (method, path) need a bearer token, as the app's routes declare it."""

    __slots__ = ("_combined", "_patterns", "_static")

    def __init__(self) -> None:
        self._static: dict[str, tuple[frozenset[str], str]] = {}
        self._patterns: list[tuple[str, tuple[frozenset[str], str]]] = []
        self._combined: re.Pattern[str] | None = None

    def add(self, path: str, template: str, methods: frozenset[str]) -> None:
        """`path` as Litestar declares it (``/v1/users/{user_id:str}``), `template` as it
        names it in ``scope["path_template"]`` (``/v1/users/{user_id}``)."""
        if "{" not in path:
            self._static[path] = (methods, template)
            return
        regex, end = [], 0
        for m in _PARAM.finditer(path):
            regex.append(re.escape(path[end : m.start()]))
            regex.append(".*" if m.group(2) == "path" else "[^/]+")
            end = m.end()
        regex.append(re.escape(path[end:]))
        self._patterns.append(("".join(regex), (methods, template)))
        # Most literal text first: Litestar prefers static path components to parameters.
        self._patterns.sort(key=lambda p: -len(p[0].replace("[^/]+", "").replace(".*", "")))
        # One alternation, matched in C: the first pattern that matches names its group.
        self._combined = re.compile(
            "|".join(f"(?P<r{i}>{regex})" for i, (regex, _) in enumerate(self._patterns))
        )

    def needs_auth(self, method: str, path: str) -> str | None:
        """The route template when `method` on `path` needs a bearer token, else None."""
        found = self._static.get(path)
        # Litestar's normalize_path is a regex substitution: only when it changes the path.
        if found is None and (path.endswith("/") or "//" in path or not path.startswith("/")):
            path = normalize_path(path)
            found = self._static.get(path)
        if found is None:
            match = self._combined.fullmatch(path) if self._combined else None
            if match is None or match.lastgroup is None:
                return None
            found = self._patterns[int(match.lastgroup[1:])][1]
        return found[1] if method in found[0] else None


def auth_table(app: Litestar, scheme: str = "bearer") -> AuthTable:
    """The routes of `app` whose handlers declare the `scheme` security requirement."""
    table = AuthTable()
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        methods = frozenset(
            method
            for handler in route.route_handlers
            if any(scheme in requirement for requirement in handler.resolve_security())
            for method in handler.http_methods
        )
        if methods:
            table.add(route.path, route.path_format, methods)
    return table


class Front:
    __slots__ = ("_access", "_auth", "_stats", "_table", "app")

    def __init__(
        self,
        app: _ASGIApp,
        *,
        table: AuthTable,
        authenticate: _Authenticate,
        stats: HttpStats,
        access_log: AccessLog,
    ) -> None:
        self.app = app
        self._table = table
        self._auth = authenticate
        self._stats = stats
        self._access = access_log

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        method: str = scope["method"]
        raw_path: str = scope["path"]  # before routing, which may rewrite it (mounts)
        authorization = request_id = None
        for name, value in scope["headers"]:
            if name == _AUTHORIZATION:
                if authorization is None:
                    authorization = value
            elif name == _REQUEST_ID and request_id is None:
                request_id = valid_request_id(value) or ""
        if not request_id:
            request_id = next_request_id()
        id_header = (_REQUEST_ID, request_id.encode("ascii"))
        if raw_path == HEALTHZ and method == "GET":  # liveness: a constant answer
            await self._healthz(scope, send, id_header, request_id, start)
            return
        status = 500

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers")
                if headers:
                    headers = [h for h in headers if h[0].lower() != _REQUEST_ID]
                    headers.append(id_header)
                else:
                    headers = [id_header]
                message["headers"] = headers  # a fresh dict per response: no copy
            await send(message)

        stats = self._stats
        stats.in_flight += 1
        var_token = request_id_var.set(request_id)
        try:
            protected = self._table.needs_auth(method, raw_path)
            if protected is not None:
                refusal = await self._authenticate(scope, authorization, raw_path)
                if refusal is not None:
                    scope["path_template"] = protected  # for the metrics and the log
                    await _answer(send_with_id, *refusal)
                    return
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(var_token)
            stats.in_flight -= 1
            elapsed = time.perf_counter() - start
            template = scope.get("path_template")
            stats.record(method, template or UNMATCHED, status, elapsed)
            client = scope.get("client")
            self._access.request(
                method,
                template or raw_path,
                status,
                elapsed,
                client[0] if client else None,
                request_id,
            )

    async def _healthz(
        self, scope: Any, send: Any, id_header: tuple[bytes, bytes], request_id: str, start: float
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_HEALTHZ_HEADERS, id_header],
            }
        )
        await send(_HEALTHZ_BODY)
        scope["path_template"] = HEALTHZ
        elapsed = time.perf_counter() - start
        self._stats.record("GET", HEALTHZ, 200, elapsed)
        client = scope.get("client")
        self._access.request(
            "GET", HEALTHZ, 200, elapsed, client[0] if client else None, request_id
        )

    async def _authenticate(
        self, scope: Any, authorization: bytes | None, path: str
    ) -> tuple[int, Mapping[str, Any], Mapping[str, str] | None] | None:
        """None when the caller is known (and put into the scope's state), else the answer."""
        try:
            scheme, _, token = (authorization or b"").decode("latin-1").partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise Unauthenticated("an access token is required", code="missing_token")
            principal = await self._auth(token)
        except Exception as exc:  # mapped exactly as Litestar's handlers map it
            return error_parts(exc, path)
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state[PRINCIPAL_KEY] = principal
        return None


async def _answer(
    send: Any, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None
) -> None:
    payload = _encode(body)
    raw = [_JSON, (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})
