"""Blobs in an S3-compatible object store (AWS S3, SeaweedFS, MinIO, Ceph RGW, R2, ...),
spoken to over httpx with Signature Version 4 (``sigv4.py``). Uploads stream from the
spooled file with their SHA-256 signed (the store checks it); downloads stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import structlog

from socius.blobs.sigv4 import Credentials, authorization_headers, presigned_query
from socius.domain.attachments import BlobMissing
from socius.domain.errors import Unavailable

__all__ = ["S3BlobStore"]

log = structlog.get_logger("socius.blobs")
_CHUNK = 1 << 20


def _unavailable(what: str) -> Unavailable:
    return Unavailable(f"the object store is unavailable ({what})", code="unavailable")


class S3BlobStore:
    def __init__(
        self,
        *,
        bucket: str,
        prefix: str,
        endpoint: str,
        region: str,
        access_key: str,
        secret_key: str,
        virtual_host: bool = False,
        public_endpoint: str = "",
        timeout: float = 30.0,
    ) -> None:
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._endpoint = endpoint.rstrip("/") or f"https://s3.{region}.amazonaws.com"
        self._public = public_endpoint.rstrip("/") or self._endpoint
        self._creds = Credentials(access_key, secret_key, region)
        self._virtual = virtual_host
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    # addressing ----------------------------------------------------------------------

    def _where(self, endpoint: str, key: str | None) -> tuple[str, str, str]:
        """The URL, host and path of ``key`` in the bucket (the bucket itself for None)."""
        parts = urlsplit(endpoint)
        name = "" if key is None else (f"{self._prefix}/{key}" if self._prefix else key)
        if self._virtual:
            host, path = f"{self._bucket}.{parts.netloc}", "/" + name
        else:
            host = parts.netloc
            path = f"/{self._bucket}" + (f"/{name}" if key is not None else "")
        base = f"{parts.scheme}://{host}{parts.path.rstrip('/')}"
        return base + quote(path, safe="/-_.~"), host, parts.path.rstrip("/") + path

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout),
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
            )
        return self._client

    async def _send(
        self,
        method: str,
        key: str | None,
        *,
        headers: dict[str, str] | None = None,
        payload_hash: str = "UNSIGNED-PAYLOAD",
        content: AsyncIterator[bytes] | bytes | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        url, host, path = self._where(self._endpoint, key)
        signed = authorization_headers(
            self._creds, datetime.now(UTC), method, host, path, payload_hash=payload_hash
        )
        request = self._http().build_request(
            method, url, headers={**(headers or {}), **signed}, content=content
        )
        try:
            return await self._http().send(request, stream=stream)
        except httpx.HTTPError as exc:
            log.warning("object store request failed", method=method, error=repr(exc))
            raise _unavailable(type(exc).__name__) from exc

    @staticmethod
    def _check(response: httpx.Response, what: str, ok: tuple[int, ...]) -> None:
        if response.status_code not in ok:
            log.warning(
                "object store refused",
                what=what,
                status=response.status_code,
                body=response.text[:300] if not response.is_stream_consumed else "",
            )
            raise _unavailable(f"{what}: HTTP {response.status_code}")

    # the port ------------------------------------------------------------------------

    async def start(self) -> None:
        """Make the bucket when it does not exist yet (a store that is down: later)."""
        try:
            response = await self._send("HEAD", None)
            if response.status_code == 404:
                created = await self._send("PUT", None)
                self._check(created, "create bucket", (200, 409))
        except Unavailable:
            log.warning("object store unreachable at start", bucket=self._bucket)

    async def put(
        self, key: str, source: Path, *, size: int, sha256: str, content_type: str
    ) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            with source.open("rb") as file:
                while block := await asyncio.to_thread(file.read, _CHUNK):
                    yield block

        response = await self._send(
            "PUT",
            key,
            headers={"content-length": str(size), "content-type": content_type},
            payload_hash=sha256,
            content=chunks(),
        )
        self._check(response, "put", (200, 201, 204))

    async def read(
        self, key: str, *, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        headers = {}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            headers["range"] = f"bytes={offset}-{end}"
        response = await self._send("GET", key, headers=headers, stream=True)
        if response.status_code == 404:
            await response.aclose()
            raise BlobMissing(key)
        if response.status_code not in (200, 206):
            await response.aread()
            await response.aclose()
            self._check(response, "get", (200, 206))
        return self._body(response)

    @staticmethod
    async def _body(response: httpx.Response) -> AsyncIterator[bytes]:
        try:
            async for block in response.aiter_bytes(_CHUNK):
                yield block
        except httpx.HTTPError as exc:
            raise _unavailable(type(exc).__name__) from exc
        finally:
            await response.aclose()

    async def delete(self, keys: Sequence[str]) -> None:
        gate = asyncio.Semaphore(8)

        async def one(key: str) -> None:
            async with gate:
                response = await self._send("DELETE", key)
            self._check(response, "delete", (200, 204, 404))

        await asyncio.gather(*(one(k) for k in keys))

    def presign(
        self, key: str, *, expires_seconds: int, content_type: str, disposition: str
    ) -> str | None:
        url, host, path = self._where(self._public, key)
        query = presigned_query(
            self._creds,
            datetime.now(UTC),
            "GET",
            host,
            path,
            expires_seconds=expires_seconds,
            params={
                "response-content-type": content_type,
                "response-content-disposition": disposition,
            },
        )
        return f"{url}?{query}"

    async def ping(self) -> None:
        response = await self._send("HEAD", None)
        self._check(response, "ping", (200,))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
