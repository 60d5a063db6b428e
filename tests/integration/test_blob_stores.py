"""The two blob stores behind the same port: files, and a real S3 server (SeaweedFS from
scripts/services, ``SOCIUS_TEST_S3_URL``)."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from socius.blobs import FileBlobStore, S3BlobStore
from socius.domain.attachments import BlobMissing
from socius.domain.errors import Unavailable
from socius.services.ports import BlobStore

S3_URL = os.environ.get("SOCIUS_TEST_S3_URL", "")


def s3_store(url: str, *, secret: str | None = None, prefix: str | None = None) -> S3BlobStore:
    parts = urlsplit(url)
    return S3BlobStore(
        bucket=parts.path.strip("/"),
        prefix=prefix or f"store-test-{secrets.token_hex(4)}",
        endpoint=f"{parts.scheme}://{parts.hostname}:{parts.port}",
        region="us-east-1",
        access_key=unquote(parts.username or ""),
        secret_key=secret if secret is not None else unquote(parts.password or ""),
    )


@pytest.fixture(params=["files", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    made: BlobStore
    if request.param == "files":
        made = FileBlobStore(tmp_path / "blobs")
    else:
        if not S3_URL:
            if os.environ.get("CI") == "true":
                pytest.fail("SOCIUS_TEST_S3_URL is required under CI")
            pytest.skip("no S3 store (SOCIUS_TEST_S3_URL)")
        made = s3_store(S3_URL)
    await made.start()
    yield made
    await made.close()


def spooled(tmp_path: Path, data: bytes) -> tuple[Path, str]:
    path = tmp_path / f"spool-{secrets.token_hex(4)}"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


async def read_all(store: BlobStore, key: str, **kw: int) -> bytes:
    return b"".join([c async for c in await store.read(key, **kw)])


async def test_put_read_ranges_delete(store: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # past one 1 MiB chunk
    path, digest = spooled(tmp_path, data)
    await store.put("attachments/1", path, size=len(data), sha256=digest, content_type="x/y")
    assert await read_all(store, "attachments/1") == data
    assert await read_all(store, "attachments/1", offset=5, length=10) == data[5:15]
    assert await read_all(store, "attachments/1", offset=len(data) - 3) == data[-3:]
    # Replacing a key replaces the bytes.
    path, digest = spooled(tmp_path, b"second")
    await store.put("attachments/1", path, size=6, sha256=digest, content_type="x/y")
    assert await read_all(store, "attachments/1") == b"second"
    await store.delete(["attachments/1", "attachments/never"])
    with pytest.raises(BlobMissing):
        await store.read("attachments/1")


@pytest.mark.skipif(not S3_URL, reason="no S3 store (SOCIUS_TEST_S3_URL)")
async def test_s3_with_a_wrong_secret_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    store = s3_store(S3_URL, secret="not-the-secret")
    try:
        path, digest = spooled(tmp_path, b"x")
        with pytest.raises(Unavailable):
            await store.put("attachments/3", path, size=1, sha256=digest, content_type="x/y")
        with pytest.raises(Unavailable):
            await store.ping()
    finally:
        await store.close()


@pytest.mark.skipif(not S3_URL, reason="no S3 store (SOCIUS_TEST_S3_URL)")
async def test_s3_presigned_urls_serve_until_they_expire_or_are_tampered(tmp_path: Path) -> None:
    store = s3_store(S3_URL)
    try:
        path, digest = spooled(tmp_path, b"%PDF-presigned")
        await store.put("attachments/4", path, size=14, sha256=digest, content_type="x/y")
        url = store.presign(
            "attachments/4",
            expires_seconds=60,
            content_type="application/pdf",
            disposition='attachment; filename="a.pdf"',
        )
        assert url is not None
        async with httpx.AsyncClient() as http:
            got = await http.get(url)
            assert got.status_code == 200
            assert got.content == b"%PDF-presigned"
            assert got.headers["content-type"] == "application/pdf"
            assert got.headers["content-disposition"] == 'attachment; filename="a.pdf"'
            tampered = url.replace("attachments/4", "attachments/5")
            assert (await http.get(tampered)).status_code == 403
        await store.delete(["attachments/4"])
    finally:
        await store.close()


async def test_an_unreachable_s3_store_is_unavailable(tmp_path: Path) -> None:
    store = s3_store("http://key:secret@127.0.0.1:9/bucket")  # the discard port: refused
    try:
        path, digest = spooled(tmp_path, b"x")
        with pytest.raises(Unavailable):
            await store.put("attachments/6", path, size=1, sha256=digest, content_type="x/y")
        with pytest.raises(Unavailable):
            await store.read("attachments/6")
        await store.start()  # logs and carries on: the server starts without its store
    finally:
        await store.close()
