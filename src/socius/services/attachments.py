"""Attachments: uploads, downloads, thumbnails, and the purge (docs/attachments.md).

An upload is streamed to a spool file under the data dir while it is counted, hashed and
sniffed, never held whole in memory; past ``upload_max_bytes`` it stops with 413. Its
type comes from its bytes; one not on the allow-list is refused (415). Then the file goes
to the blob store and its row is written.

Who may read one: its uploader, and the members of the conversation it was sent in
(anyone else: 404, as if it did not exist). A message's deletion (by a person or by its
timer) and its sender's account erasure doom the attachments in the same transaction: from
the commit on nobody reads them, and their bytes (thumbnails too) are deleted right after,
or by the next purge when the store was down. Uploads never sent are purged after
``unsent_ttl_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import structlog

from socius.domain.attachments import (
    IMAGE_TYPES,
    SNIFF_BYTES,
    THUMBNAIL_SIZES,
    Attachment,
    BlobMissing,
    attachment_not_found,
    blob_key,
    check_attachment_count,
    clean_filename,
    sniff,
    thumbnail_key,
    thumbnail_size,
)
from socius.domain.errors import Conflict, NotFound, TooLarge, UnsupportedMediaType
from socius.domain.ids import IdGenerator
from socius.services.ports import BlobStore, Clock, Images, UnitOfWork, UnitOfWorkFactory
from socius.services.rate_limits import RateLimit

__all__ = [
    "AttachmentService",
    "check_attachable",
    "link_attachments",
]

log = structlog.get_logger("socius.attachments")


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int
    allowed_types: frozenset[str]
    unsent_ttl_seconds: int
    presign_seconds: int


async def check_attachable(
    uow: UnitOfWork, actor: int, attachment_ids: Sequence[int]
) -> list[Attachment]:
    """Before a send writes anything: the actor's own uploads not sent yet, in the order
    given (at most ``MAX_PER_MESSAGE``). 404 ``attachment_not_found`` for one that is not
    theirs or does not exist, 409 ``attachment_already_sent`` for one another message
    carries."""
    ids = check_attachment_count(list(attachment_ids))
    if not ids:
        return []
    found = {a.id: a for a in await uow.attachments.get_many(ids) if a.owner_id == actor}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(
            "no such attachment",
            code="attachment_not_found",
            details={"attachment_ids": [str(i) for i in missing]},
        )
    sent = [i for i in ids if found[i].message_id is not None]
    if sent:
        raise Conflict(
            "an attachment goes with one message only; upload it again",
            code="attachment_already_sent",
            details={"attachment_ids": [str(i) for i in sent]},
        )
    return [found[i] for i in ids]


async def link_attachments(
    uow: UnitOfWork, actor: int, items: Sequence[Attachment], message_id: int, conversation_id: int
) -> None:
    """In the send's transaction, after the message row: attach them (one statement). One
    taken meanwhile by another send or the purge fails the whole send (409)."""
    if not items:
        return
    linked = await uow.attachments.link([a.id for a in items], actor, message_id, conversation_id)
    if linked != len(items):
        raise Conflict(
            "an attachment was sent or purged meanwhile; upload it again",
            code="attachment_already_sent",
        )


class AttachmentService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        ids: IdGenerator,
        store: BlobStore,
        images: Images,
        *,
        spool_dir: Path,
        max_bytes: int,
        allowed_types: Sequence[str],
        unsent_ttl_seconds: int,
        presign_seconds: int,
        limit: RateLimit | None = None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._ids = ids
        self.store = store
        self._images = images
        self._spool = spool_dir
        self.limits = Limits(
            max_bytes, frozenset(allowed_types), unsent_ttl_seconds, presign_seconds
        )
        self._limit = limit
        self._purging = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()  # held against garbage collection

    async def start(self) -> None:
        await asyncio.to_thread(self._spool.mkdir, parents=True, exist_ok=True)
        await self.store.start()

    async def stop(self) -> None:
        """Let a purge that is under way finish (before the database closes)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # upload --------------------------------------------------------------------------

    def _too_large(self) -> TooLarge:
        return TooLarge(
            f"an upload is at most {self.limits.max_bytes} bytes",
            code="request_too_large",
            details={"max": self.limits.max_bytes},
        )

    async def upload(
        self,
        actor: int,
        body: AsyncIterable[bytes],
        *,
        declared_size: int | None,
        filename: Callable[[], str | None],
    ) -> Attachment:
        """Store an upload streamed in ``body``; 413 past the limit (at once when the
        declared size is already past it), 415 for a type not allowed. ``filename`` is
        asked once the body is read (a multipart body tells it on the way)."""
        if declared_size is not None and declared_size > self.limits.max_bytes:
            raise self._too_large()
        if self._limit is not None:
            await self._limit.check(actor)
        fd, name = tempfile.mkstemp(dir=self._spool, prefix="upload-")
        spooled = Path(name)
        try:
            size, digest, head = await self._spool_body(fd, body)
            content_type = sniff(head)
            if size == 0 or content_type not in self.limits.allowed_types:
                raise UnsupportedMediaType(
                    f"files of type {content_type} are not accepted" if size else "empty file",
                    details={
                        "content_type": content_type,
                        "allowed": sorted(self.limits.allowed_types),
                    },
                )
            dims = None
            if content_type in IMAGE_TYPES:
                dims = await asyncio.to_thread(self._images.dimensions, spooled)
            attachment = Attachment(
                id=self._ids.next_id(),
                owner_id=actor,
                content_type=content_type,
                size=size,
                sha256=digest,
                created_at=self._clock(),
                width=dims[0] if dims else None,
                height=dims[1] if dims else None,
                filename=clean_filename(filename()),
            )
            await self.store.put(
                blob_key(attachment.id),
                spooled,
                size=size,
                sha256=digest,
                content_type=content_type,
            )
            try:
                async with self._uow() as uow:
                    await uow.attachments.add(attachment)
                    await uow.commit()
            except BaseException:
                with contextlib.suppress(Exception):
                    await self.store.delete([blob_key(attachment.id)])
                raise
            return attachment
        finally:
            await asyncio.to_thread(spooled.unlink, missing_ok=True)

    async def _spool_body(self, fd: int, body: AsyncIterable[bytes]) -> tuple[int, str, bytes]:
        """Write the body to the spool file; its size, SHA-256 (hex) and first bytes."""
        hasher = hashlib.sha256()
        head = b""
        size = 0
        with os.fdopen(fd, "wb") as out:
            async for chunk in body:
                if not chunk:
                    continue
                size += len(chunk)
                if size > self.limits.max_bytes:
                    raise self._too_large()
                if len(head) < SNIFF_BYTES:
                    head += chunk[: SNIFF_BYTES - len(head)]
                hasher.update(chunk)
                out.write(chunk)
        return size, hasher.hexdigest(), head

    # download ------------------------------------------------------------------------

    async def get(self, viewer: int, attachment_id: int) -> Attachment:
        async with self._uow(write=False) as uow:
            found = await uow.attachments.readable(attachment_id, viewer)
        if found is None:
            raise attachment_not_found()
        return found

    async def read(
        self, attachment: Attachment, *, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        """The bytes of an attachment ``get`` gave (a range of them)."""
        try:
            return await self.store.read(blob_key(attachment.id), offset=offset, length=length)
        except BlobMissing as exc:  # purged between the check and the read
            raise attachment_not_found() from exc

    def link(self, attachment: Attachment, disposition: str) -> str | None:
        """A presigned URL of the bytes, when the store makes them (and they are on)."""
        if self.limits.presign_seconds <= 0:
            return None
        return self.store.presign(
            blob_key(attachment.id),
            expires_seconds=self.limits.presign_seconds,
            content_type=attachment.content_type,
            disposition=disposition,
        )

    async def thumbnail(self, viewer: int, attachment_id: int, asked: int) -> tuple[int, bytes]:
        """A WebP no larger than ``asked`` (rounded up to one of ``THUMBNAIL_SIZES``) on
        each side, made once and kept in the store; the size made and the bytes."""
        attachment = await self.get(viewer, attachment_id)
        size = thumbnail_size(asked)
        unavailable = NotFound("this attachment has no thumbnail", code="thumbnail_unavailable")
        if attachment.content_type not in IMAGE_TYPES or not self._images.available:
            raise unavailable
        key = thumbnail_key(attachment.id, size)
        try:
            return size, b"".join([c async for c in await self.store.read(key)])
        except BlobMissing:
            pass
        fd, name = tempfile.mkstemp(dir=self._spool, prefix="thumb-")
        source = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in await self.read(attachment):
                    out.write(chunk)
            made = await asyncio.to_thread(self._images.thumbnail, source, size)
            if made is None:
                raise unavailable
            await asyncio.to_thread(source.write_bytes, made)
            await self.store.put(
                key,
                source,
                size=len(made),
                sha256=hashlib.sha256(made).hexdigest(),
                content_type="image/webp",
            )
        finally:
            await asyncio.to_thread(source.unlink, missing_ok=True)
        if not await self._still_readable(viewer, attachment.id):
            # Doomed while it was made: the purge may have run before the put.
            await self.store.delete([key])
            raise attachment_not_found()
        return size, made

    async def _still_readable(self, viewer: int, attachment_id: int) -> bool:
        async with self._uow(write=False) as uow:
            return await uow.attachments.readable(attachment_id, viewer) is not None

    # purge ---------------------------------------------------------------------------

    async def purge(self, *, batch: int = 200) -> int:
        """Doom the uploads never sent past their time, then delete the bytes and rows of
        every doomed attachment; how many were deleted. A store that is down leaves them
        for the next run."""
        async with self._purging:
            now = self._clock()
            before = now - timedelta(seconds=self.limits.unsent_ttl_seconds)
            async with self._uow() as uow:
                await uow.attachments.doom_unsent(before, now, limit=batch)
                await uow.commit()
            removed = 0
            while True:
                async with self._uow(write=False) as uow:
                    doomed = await uow.attachments.doomed(limit=batch)
                if not doomed:
                    return removed
                keys = [blob_key(i) for i in doomed]
                keys += [thumbnail_key(i, s) for i in doomed for s in THUMBNAIL_SIZES]
                await self.store.delete(keys)
                async with self._uow() as uow:
                    await uow.attachments.remove(doomed)
                    await uow.commit()
                removed += len(doomed)
                if len(doomed) < batch:
                    return removed

    async def purge_soon(self) -> None:
        """After a commit that doomed attachments: delete their bytes now, in the
        background (the periodic purge retries what fails)."""

        async def run() -> None:
            try:
                await self.purge()
            except Exception:
                log.warning("attachment purge failed; the next run retries", exc_info=True)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
