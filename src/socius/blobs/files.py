"""Blobs as files under a directory (the embedded server: ``data_dir/blobs``). A file
is moved into place whole (a rename), so a reader never sees half of one."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from socius.domain.attachments import BlobMissing

__all__ = ["FileBlobStore"]

_CHUNK = 1 << 20


class FileBlobStore:
    def __init__(self, root: Path) -> None:
        self._root = root

    def _path(self, key: str) -> Path:
        path = (self._root / key).resolve()
        if not path.is_relative_to(self._root.resolve()):
            raise ValueError(f"a blob key outside the store: {key!r}")
        return path

    async def start(self) -> None:
        self._root.mkdir(parents=True, exist_ok=True)

    async def put(
        self, key: str, source: Path, *, size: int, sha256: str, content_type: str
    ) -> None:
        del size, sha256, content_type  # the port's; a file needs none of them
        target = self._path(key)

        def move() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            staged = target.with_name(target.name + ".part")
            shutil.move(source, staged)  # a rename on the same file system
            os.replace(staged, target)

        await asyncio.to_thread(move)

    async def read(
        self, key: str, *, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        try:
            file = self._path(key).open("rb")
        except FileNotFoundError as exc:
            raise BlobMissing(key) from exc
        return self._chunks(file, offset, length)

    @staticmethod
    async def _chunks(
        file: io.BufferedReader, offset: int, length: int | None
    ) -> AsyncIterator[bytes]:
        with file:
            file.seek(offset)
            left = length
            while left is None or left > 0:
                want = _CHUNK if left is None else min(_CHUNK, left)
                block = await asyncio.to_thread(file.read, want)
                if not block:
                    return
                if left is not None:
                    left -= len(block)
                yield block

    async def delete(self, keys: Sequence[str]) -> None:
        def remove() -> None:
            for key in keys:
                with contextlib.suppress(FileNotFoundError):
                    self._path(key).unlink()

        await asyncio.to_thread(remove)

    def presign(
        self,
        key: str,  # noqa: ARG002 (files have no presigned URLs)
        *,
        expires_seconds: int,  # noqa: ARG002
        content_type: str,  # noqa: ARG002
        disposition: str,  # noqa: ARG002
    ) -> str | None:
        return None

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
