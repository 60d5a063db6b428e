"""AWS Signature Version 4 for S3 requests: the ``Authorization`` header, and presigned
URLs (query-string authentication). Enough of it for one bucket's object requests; see
docs/decisions/0019-attachments-and-blob-store.md for why it is written here."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

__all__ = ["UNSIGNED", "Credentials", "authorization_headers", "presigned_query"]

UNSIGNED = "UNSIGNED-PAYLOAD"
_ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str
    region: str
    service: str = "s3"


def _uri(path: str) -> str:
    return quote(path, safe="/-_.~")


def _query(params: Mapping[str, str]) -> str:
    return "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items())
    )


def _key(creds: Credentials, day: str) -> bytes:
    key = ("AWS4" + creds.secret_key).encode()
    for part in (day, creds.region, creds.service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _signature(
    creds: Credentials,
    when: datetime,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    payload_hash: str,
) -> tuple[str, str, str]:
    """The signature, the signed header names and the credential scope."""
    stamp, day = when.strftime("%Y%m%dT%H%M%SZ"), when.strftime("%Y%m%d")
    names = sorted(h.lower() for h in headers)
    lowered = {k.lower(): " ".join(v.split()) for k, v in headers.items()}
    canonical = "\n".join(
        [
            method,
            _uri(path),
            _query(query),
            "".join(f"{n}:{lowered[n]}\n" for n in names),
            ";".join(names),
            payload_hash,
        ]
    )
    scope = f"{day}/{creds.region}/{creds.service}/aws4_request"
    to_sign = "\n".join([_ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signature = hmac.new(_key(creds, day), to_sign.encode(), hashlib.sha256).hexdigest()
    return signature, ";".join(names), scope


def authorization_headers(
    creds: Credentials,
    when: datetime,
    method: str,
    host: str,
    path: str,
    query: Mapping[str, str] | None = None,
    *,
    payload_hash: str = UNSIGNED,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The headers that sign a request (``host`` included; ``extra`` signed too)."""
    headers = {
        "host": host,
        "x-amz-date": when.strftime("%Y%m%dT%H%M%SZ"),
        "x-amz-content-sha256": payload_hash,
        **(extra or {}),
    }
    signature, signed, scope = _signature(
        creds, when, method, path, query or {}, headers, payload_hash
    )
    headers["authorization"] = (
        f"{_ALGORITHM} Credential={creds.access_key}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    del headers["host"]  # the HTTP client sends it, from the URL
    return headers


def presigned_query(
    creds: Credentials,
    when: datetime,
    method: str,
    host: str,
    path: str,
    *,
    expires_seconds: int,
    params: Mapping[str, str] | None = None,
) -> str:
    """The query string of a presigned URL for ``path`` on ``host``."""
    stamp, day = when.strftime("%Y%m%dT%H%M%SZ"), when.strftime("%Y%m%d")
    query = {
        **(params or {}),
        "X-Amz-Algorithm": _ALGORITHM,
        "X-Amz-Credential": f"{creds.access_key}/{day}/{creds.region}/{creds.service}/aws4_request",
        "X-Amz-Date": stamp,
        "X-Amz-Expires": str(expires_seconds),
        "X-Amz-SignedHeaders": "host",
    }
    signature, _, _ = _signature(creds, when, method, path, query, {"host": host}, UNSIGNED)
    return f"{_query(query)}&X-Amz-Signature={signature}"
