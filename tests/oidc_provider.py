"""A real OpenID Connect provider for tests: discovery, JWKS, an authorization endpoint
that signs in whichever user the test chose, and a token endpoint that checks the client,
the code, the redirect URI and PKCE, and answers ID tokens signed (RS256) with a key of
its JWKS. Served over real HTTP on 127.0.0.1 from a thread.

Knobs for failure paths: ``id_token_overrides`` (claims to change: aud, nonce, exp, ...),
``sign_with_stranger`` (a key not in the JWKS), ``code_ttl`` (0: every code has expired),
``deny`` (the user declines: the callback gets ``error=access_denied``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["OidcProvider", "running_provider"]


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    nonce: str | None
    challenge: str
    claims: dict[str, Any]
    expires: float
    used: bool = False


@dataclass
class OidcProvider:
    client_id: str = "socius-test"
    client_secret: str = "provider-secret-for-the-socius-tests-0123456789"
    issuer: str = ""
    user: dict[str, Any] = field(default_factory=dict)  # who signs in at /authorize
    id_token_overrides: dict[str, Any] = field(default_factory=dict)
    sign_with_stranger: bool = False
    symmetric: bool = False  # sign with the client secret (HS256): refused by socius
    code_ttl: float = 60.0
    deny: bool = False
    token_requests: int = 0
    jwks_requests: int = 0
    kid: str = "k1"
    _key: rsa.RSAPrivateKey = field(default_factory=_rsa)
    _stranger: rsa.RSAPrivateKey = field(default_factory=_rsa)
    _codes: dict[str, _Code] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def sign_in_as(self, sub: str, **claims: Any) -> None:
        self.user = {"sub": sub, **claims}

    def rotate_key(self) -> None:
        """A new signing key under a new ``kid``; the JWKS holds only the new one."""
        self._key = _rsa()
        self.kid = f"k{int(self.kid[1:]) + 1}"

    def jwks(self) -> dict[str, Any]:
        self.jwks_requests += 1
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.issuer + "/authorize",
            "token_endpoint": self.issuer + "/token",
            "jwks_uri": self.issuer + "/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
        }

    # /authorize ----------------------------------------------------------------------

    def authorize(self, query: dict[str, str]) -> tuple[int, str]:
        redirect = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or not redirect:
            return 400, ""
        if query.get("response_type") != "code" or query.get("code_challenge_method") != "S256":
            return 400, ""
        state = query.get("state", "")
        if self.deny:
            return 302, redirect + "?" + urlencode({"error": "access_denied", "state": state})
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Code(
                client_id=self.client_id,
                redirect_uri=redirect,
                nonce=query.get("nonce"),
                challenge=query.get("code_challenge", ""),
                claims=dict(self.user),
                expires=time.time() + self.code_ttl,
            )
        return 302, redirect + "?" + urlencode({"code": code, "state": state})

    # /token --------------------------------------------------------------------------

    def token(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, Any]]:
        self.token_requests += 1
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return 401, {"error": "invalid_client"}
        client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        if (client_id, secret) != (self.client_id, self.client_secret):
            return 401, {"error": "invalid_client"}
        if form.get("grant_type") != "authorization_code":
            return 400, {"error": "unsupported_grant_type"}
        with self._lock:
            found = self._codes.get(form.get("code", ""))
            if found is None or found.used or found.expires <= time.time():
                return 400, {"error": "invalid_grant"}
            found.used = True
        if form.get("redirect_uri") != found.redirect_uri:
            return 400, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != found.challenge:
            return 400, {"error": "invalid_grant", "error_description": "PKCE"}
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            **({"nonce": found.nonce} if found.nonce else {}),
            **found.claims,
            **self.id_token_overrides,
        }
        key = self._stranger if self.sign_with_stranger else self._key
        if self.symmetric:
            id_token = jwt.encode(claims, self.client_secret, algorithm="HS256")
        else:
            id_token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.kid})
        body = {
            "access_token": secrets.token_urlsafe(16),
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
        }
        return 200, body


def _handler(provider: OidcProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if parts.path == "/.well-known/openid-configuration":
                self._json(200, provider.discovery())
            elif parts.path == "/jwks":
                self._json(200, provider.jwks())
            elif parts.path == "/authorize":
                status, location = provider.authorize(query)
                self.send_response(status)
                if location:
                    self.send_header("location", location)
                self.send_header("content-length", "0")
                self.end_headers()
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if urlsplit(self.path).path == "/token":
                status, body = provider.token(form, self.headers.get("authorization", ""))
                self._json(status, body)
            else:
                self._json(404, {"error": "not_found"})

    return Handler


@contextmanager
def running_provider() -> Iterator[OidcProvider]:
    provider = OidcProvider()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(provider))
    provider.issuer = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
