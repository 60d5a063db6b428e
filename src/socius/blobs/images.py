"""Image work with Pillow (extra ``socius[images]``): the size of an uploaded image, and
thumbnails. Without Pillow, uploads carry no width and height and thumbnails answer 404
``thumbnail_unavailable``."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

__all__ = ["PillowImages"]

MAX_PIXELS = 50_000_000
"""Larger images get no thumbnail (decoding one would take too much memory)."""


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        return None
    return Image


class PillowImages:
    def __init__(self) -> None:
        self._image = _pillow()

    @property
    def available(self) -> bool:
        return self._image is not None

    def dimensions(self, path: Path) -> tuple[int, int] | None:
        if self._image is None:
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with self._image.open(path) as image:  # reads the header only
                    width, height = image.size
        except Exception:  # not an image Pillow can read: no dimensions
            return None
        return int(width), int(height)

    def thumbnail(self, path: Path, size: int) -> bytes | None:
        if self._image is None:
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with self._image.open(path) as image:
                    width, height = image.size
                    if width * height > MAX_PIXELS:
                        return None
                    image.draft("RGB", (size, size))  # JPEG: decode at a smaller scale
                    frame = image.convert("RGBA" if _has_alpha(image) else "RGB")
                    frame.thumbnail((size, size))
                    out = io.BytesIO()
                    frame.save(out, format="WEBP", quality=80, method=4)
        except Exception:  # unreadable or truncated image: no thumbnail
            return None
        return out.getvalue()


def _has_alpha(image: Any) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
