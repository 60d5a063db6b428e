"""Attachments: files uploaded once and sent with messages (docs/attachments.md).

An upload belongs to its uploader until a message of theirs carries it; from then on the
members of that conversation may read it too. What it is comes from its bytes (``sniff``),
never from what the client says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from socius.domain.errors import InvalidInput, NotFound

__all__ = [
    "DEFAULT_ALLOWED_TYPES",
    "IMAGE_TYPES",
    "MAX_PER_MESSAGE",
    "SNIFF_BYTES",
    "THUMBNAIL_SIZES",
    "Attachment",
    "BlobMissing",
    "attachment_not_found",
    "blob_key",
    "check_attachment_count",
    "clean_filename",
    "sniff",
    "thumbnail_key",
    "thumbnail_size",
]

MAX_PER_MESSAGE = 10
SNIFF_BYTES = 4096
"""How much of the start of an upload ``sniff`` looks at."""

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
DEFAULT_ALLOWED_TYPES = (
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "application/pdf",
    "video/mp4",
    "video/webm",
    "video/quicktime",
    "audio/mpeg",
    "audio/mp4",
    "audio/ogg",
    "audio/wav",
    "text/plain",
)
THUMBNAIL_SIZES = (64, 128, 256, 512, 1024)
"""Thumbnails are made at these longest sides; a size asked for is rounded up to one."""


@dataclass(frozen=True, slots=True)
class Attachment:
    id: int
    owner_id: int
    content_type: str
    size: int
    sha256: str  # hex
    created_at: datetime
    width: int | None = None
    height: int | None = None
    filename: str | None = None
    message_id: int | None = None  # None: uploaded, not sent yet
    conversation_id: int | None = None

    def snapshot(self) -> dict[str, Any]:
        """What a message keeps of it (its ``attachments`` column, and the API's view)."""
        return {
            "id": str(self.id),
            "content_type": self.content_type,
            "size": self.size,
            "sha256": self.sha256,
            "width": self.width,
            "height": self.height,
            "filename": self.filename,
        }


def attachment_not_found() -> NotFound:
    """The same answer whether it never existed, is gone, or is someone else's."""
    return NotFound("no such attachment", code="attachment_not_found")


def blob_key(attachment_id: int) -> str:
    return f"attachments/{attachment_id}"


def thumbnail_key(attachment_id: int, size: int) -> str:
    return f"thumbnails/{attachment_id}/{size}"


def thumbnail_size(asked: int) -> int:
    """The smallest of ``THUMBNAIL_SIZES`` at least ``asked`` (the largest past them all)."""
    return next((s for s in THUMBNAIL_SIZES if s >= asked), THUMBNAIL_SIZES[-1])


def check_attachment_count(ids: list[int]) -> list[int]:
    """The ids without repeats, at most ``MAX_PER_MESSAGE`` of them."""
    unique = list(dict.fromkeys(ids))
    if len(unique) > MAX_PER_MESSAGE:
        raise InvalidInput(
            f"a message carries at most {MAX_PER_MESSAGE} attachments",
            code="too_many_attachments",
            details={"field": "attachment_ids", "max": MAX_PER_MESSAGE},
        )
    return unique


_FILENAME_MAX = 200


def clean_filename(name: str | None) -> str | None:
    """A file name fit for a ``Content-Disposition`` header: no path, no control
    characters, no quotes; None when nothing is left."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(c for c in base if c.isprintable() and c not in '"\r\n;').strip(" .")
    return kept[:_FILENAME_MAX] or None


def sniff(head: bytes) -> str:
    """The media type the first bytes of a file show (at least ``SNIFF_BYTES`` of them
    when the file is that long); ``application/octet-stream`` when none is recognised."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and len(head) >= 12:
        kind = head[8:12]
        if kind == b"WEBP":
            return "image/webp"
        if kind == b"WAVE":
            return "audio/wav"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand == b"qt  ":
            return "video/quicktime"
        if brand in (b"M4A ", b"M4B "):
            return "audio/mp4"
        if brand in (b"isom", b"iso2", b"mp41", b"mp42", b"avc1", b"dash", b"M4V ", b"3gp4"):
            return "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3") and b"webm" in head[:64]:
        return "video/webm"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"ID3") or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE6 == 0xE2):
        return "audio/mpeg"
    if _is_text(head):
        return "text/plain"
    return "application/octet-stream"


def _is_text(head: bytes) -> bool:
    """UTF-8 without control characters but tab and line ends (a character cut at the
    end of ``head`` is allowed)."""
    if not head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:
            return False
        text = head[: exc.start].decode("utf-8")
    return all(c.isprintable() or c in "\t\n\r" for c in text)


class BlobMissing(Exception):
    """The store holds no bytes under that key."""
