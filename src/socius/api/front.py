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
from functools import partial
from typing import Any

import msgspec
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.utils import normalize_path

from socius.api.dependencies import PRINCIPAL_KEY
from socius.api.errors import error_parts
from socius.api.fast import FAST_GET, FAST_WRITE
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
_HOST = b"host"
_CONTENT_LENGTH = b"content-length"
# Litestar's own check (litestar/_asgi/utils.py): a Host it refuses, the fast lane leaves to it.
_VALID_HOST = re.compile(rb"\A[0-9A-Za-z!$&'()*+,;=\-._~:\[\]@%]*\Z", re.IGNORECASE)
_encode = msgspec.json.Encoder().encode
_JSON = (b"content-type", b"application/json")
_PARAM = re.compile(r"\{([^}:]+)(?::([^}]+))?\}")
HEALTHZ = "/healthz"
_HEALTHZ_BODY = {"type": "http.response.body", "body": b'{"status":"ok"}'}
_HEALTHZ_HEADERS = (_JSON, (b"content-length", b"15"))


_SEEN_MAX = 4096
_SEEN_PATH_MAX = 200

_Call = Callable[[Principal, tuple[str, ...], bytes], Awaitable[bytes | None]]


class _RouteWrite:
    """A route's fast write (api/fast.py ``fast_write``), given the container: whether it
    takes the request body, and the most bytes of it Litestar would read."""

    __slots__ = ("body", "call", "max_body")

    def __init__(self, call: _Call, *, body: bool, max_body: int | None) -> None:
        self.call = call
        self.body = body
        self.max_body = max_body


class _Route:
    """What the front knows of one route: the methods that need a bearer token, its
    template, its fast read and fast writes (api/fast.py) with the pattern giving its
    parameters."""

    __slots__ = ("fast", "methods", "params", "template", "writes")

    def __init__(
        self,
        methods: frozenset[str],
        template: str,
        fast: _Call | None,
        params: re.Pattern[str] | None,
        writes: dict[str, _RouteWrite] | None = None,
    ) -> None:
        self.methods = methods
        self.template = template
        self.fast = fast
        self.params = params
        self.writes = writes


class AuthTable:
    """Which (method, path) need a bearer token, as the app's routes declare it, and which
    GET routes the front answers itself (api/fast.py)."""

    __slots__ = ("_combined", "_patterns", "_seen", "_static")

    def __init__(self) -> None:
        self._static: dict[str, _Route] = {}
        self._patterns: list[tuple[str, _Route]] = []
        self._combined: re.Pattern[str] | None = None
        # Paths with parameters already matched (~2 µs for the alternation, ~0.1 µs here),
        # bounded: emptied when full, short paths only.
        self._seen: dict[str, tuple[_Route, str] | None] = {}

    def add(
        self,
        path: str,
        template: str,
        methods: frozenset[str],
        fast: _Call | None = None,
        writes: dict[str, _RouteWrite] | None = None,
    ) -> None:
        """`path` as Litestar declares it (``/v1/users/{user_id:str}``), `template` as it
        names it in ``scope["path_template"]`` (``/v1/users/{user_id}``); `fast`: the
        route's fast read, `writes` its fast writes by method, already given the
        container."""
        self._seen.clear()
        writes = writes or None
        if "{" not in path:
            self._static[path] = _Route(methods, template, fast, None, writes)
            return
        regex, groups, end = [], [], 0
        for m in _PARAM.finditer(path):
            regex.append(re.escape(path[end : m.start()]))
            part = ".*" if m.group(2) == "path" else "[^/]+"
            regex.append(part)
            groups.append(re.escape(path[end : m.start()]) + f"({part})")
            end = m.end()
        regex.append(re.escape(path[end:]))
        groups.append(re.escape(path[end:]))
        lane = fast is not None or writes is not None
        params = re.compile("".join(groups)) if lane else None
        self._patterns.append(("".join(regex), _Route(methods, template, fast, params, writes)))
        # Most literal text first: Litestar prefers static path components to parameters.
        self._patterns.sort(key=lambda p: -len(p[0].replace("[^/]+", "").replace(".*", "")))
        # One alternation, matched in C: the first pattern that matches names its group.
        self._combined = re.compile(
            "|".join(f"(?P<r{i}>{regex})" for i, (regex, _) in enumerate(self._patterns))
        )

    def route(self, path: str) -> tuple[_Route, str] | None:
        """The protected route `path` leads to, with the path as Litestar routes it."""
        static = self._static.get(path)
        if static is not None:
            return static, path
        if path in self._seen:
            return self._seen[path]
        found = self._match(path)
        if len(path) <= _SEEN_PATH_MAX:
            if len(self._seen) >= _SEEN_MAX:
                self._seen.clear()
            self._seen[path] = found
        return found

    def _match(self, path: str) -> tuple[_Route, str] | None:
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
        return found, path

    def needs_auth(self, method: str, path: str) -> str | None:
        """The route template when `method` on `path` needs a bearer token, else None."""
        found = self.route(path)
        return found[0].template if found is not None and method in found[0].methods else None


def auth_table(app: Litestar, scheme: str = "bearer", *, fast_reads: bool = True) -> AuthTable:
    """The routes of `app` whose handlers declare the `scheme` security requirement, with
    the fast reads and writes (api/fast.py) of their handlers (unless not `fast_reads`:
    Litestar answers every request, as the tests compare)."""
    table = AuthTable()
    container = app.state.get("container")
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        protected = [
            handler
            for handler in route.route_handlers
            if any(scheme in requirement for requirement in handler.resolve_security())
        ]
        methods = frozenset(method for handler in protected for method in handler.http_methods)
        fast = None
        writes: dict[str, _RouteWrite] = {}
        for handler in route.route_handlers:
            read = handler.opt.get(FAST_GET)
            write = handler.opt.get(FAST_WRITE)
            if read is not None:
                if handler not in protected or handler.http_methods != {"GET"}:
                    raise ValueError(
                        f"{route.path}: a fast read needs a GET route behind the token"
                    )
                fast = partial(read, container) if fast_reads else None
            if write is not None:
                (method,) = handler.http_methods
                if handler not in protected or method not in _WRITES or handler.status_code != 200:
                    raise ValueError(
                        f"{route.path}: a fast write needs a 200 write route behind the token"
                    )
                call, body = write
                if fast_reads:
                    writes[method] = _RouteWrite(
                        partial(call, container),
                        body=body,
                        max_body=handler.resolve_request_max_body_size(),
                    )
        if methods:
            table.add(route.path, route.path_format, methods, fast, writes)
    return table


_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


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
        authorization = request_id = host = None
        for name, value in scope["headers"]:
            if name == _AUTHORIZATION:
                if authorization is None:
                    authorization = value
            elif name == _REQUEST_ID:
                if request_id is None:
                    request_id = valid_request_id(value) or ""
            elif name == _HOST and host is None:
                host = value
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
            found = self._table.route(raw_path)
            if found is not None and method in found[0].methods:
                route = found[0]
                principal = await self._authenticate(authorization, raw_path)
                if not isinstance(principal, Principal):
                    scope["path_template"] = route.template  # for the metrics and the log
                    await _answer(send_with_id, *principal)
                    return
                if route.fast is not None and method == "GET" and _lane_open(scope, host):
                    answered = await self._fast(
                        scope, send, route.fast, route, found[1], principal, id_header, raw_path
                    )
                    if answered:
                        status = answered
                        return
                elif (
                    route.writes is not None and method in route.writes and _lane_open(scope, host)
                ):
                    write = route.writes[method]
                    body: bytes | None = b""
                    if write.body:
                        body, receive = await _read_body(scope, receive, write.max_body)
                    if body is not None:
                        answered = await self._fast(
                            scope,
                            send,
                            write.call,
                            route,
                            found[1],
                            principal,
                            id_header,
                            raw_path,
                            body,
                        )
                        if answered:
                            status = answered
                            return
                        if write.body:  # Litestar reads it again
                            receive = _replay([_whole(body)], receive)
                state = scope.get("state")
                if state is None:
                    state = scope["state"] = {}
                state[PRINCIPAL_KEY] = principal
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

    @staticmethod
    async def _fast(
        scope: Any,
        send: Any,
        call: _Call,
        route: _Route,
        path: str,
        principal: Principal,
        id_header: tuple[bytes, bytes],
        raw_path: str,
        body: bytes | None = None,
    ) -> int:
        """Answer with the route's fast read or write (api/fast.py): the status sent, or 0
        when the read declined the request (Litestar answers it). A read is given the
        query string, a write the request body."""
        if route.params is None:
            params: tuple[str, ...] = ()
        else:
            match = route.params.fullmatch(path)
            if match is None:
                return 0
            params = match.groups()
        try:
            answer = await call(principal, params, scope["query_string"] if body is None else body)
        except Exception as exc:  # mapped exactly as Litestar's handlers map it
            status, payload, headers = error_parts(exc, raw_path)
            scope["path_template"] = route.template
            await _answer(send, status, payload, headers, id_header)
            return status
        if answer is None:
            return 0
        body = answer
        scope["path_template"] = route.template
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [_JSON, (b"content-length", str(len(body)).encode()), id_header],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return 200

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
        self, authorization: bytes | None, path: str
    ) -> Principal | tuple[int, Mapping[str, Any], Mapping[str, str] | None]:
        """The caller, else the answer refusing the request."""
        try:
            scheme, _, token = (authorization or b"").decode("latin-1").partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise Unauthenticated("an access token is required", code="missing_token")
            return await self._auth(token)
        except Exception as exc:  # mapped exactly as Litestar's handlers map it
            return error_parts(exc, path)


def _lane_open(scope: Any, host: bytes | None) -> bool:
    """Whether the fast lane may answer: Litestar would route the request as the table
    does (no mount prefix, a Host it accepts); otherwise Litestar answers it."""
    return not scope.get("root_path") and (host is None or _VALID_HOST.match(host) is not None)


async def _read_body(scope: Any, receive: Any, limit: int | None) -> tuple[bytes | None, Any]:
    """The request body for a fast write, and the `receive` Litestar is to use: the body
    is None (and the messages read are replayed to Litestar, which answers) when it is
    empty, over `limit`, announced with a ``Content-Length`` over `limit` or not a number,
    or the client left before sending it all."""
    for name, value in scope["headers"]:
        if name == _CONTENT_LENGTH:
            if not value.isdigit() or (limit and int(value) > limit):
                return None, receive
            break
    read: list[Any] = []
    total = 0
    while True:
        message = await receive()
        read.append(message)
        if message["type"] != "http.request":
            break
        total += len(message.get("body", b""))
        if limit and total > limit:
            break
        if not message.get("more_body", False):
            if total:
                return b"".join(m.get("body", b"") for m in read), receive
            break
    return None, _replay(read, receive)


def _whole(body: bytes) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": False}


def _replay(messages: list[Any], receive: Any) -> Any:
    """`receive` that first gives `messages` again."""
    pending = iter(messages)

    async def replay() -> Any:
        for message in pending:
            return message
        return await receive()

    return replay


async def _answer(
    send: Any,
    status: int,
    body: Mapping[str, Any],
    headers: Mapping[str, str] | None,
    *extra: tuple[bytes, bytes],
) -> None:
    payload = _encode(body)
    raw = [_JSON, (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    raw += extra
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})
