"""What an upload is, from its first bytes; file names fit for a header."""

from __future__ import annotations

import pytest

from socius.domain.attachments import clean_filename, sniff, thumbnail_size


@pytest.mark.parametrize(
    ("head", "media_type"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
        (b"GIF89a\x01\x00", "image/gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "audio/wav"),
        (b"%PDF-1.7\n", "application/pdf"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00", "video/mp4"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", "video/quicktime"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00", "audio/mp4"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "video/webm"),
        (b"OggS\x00\x02", "audio/ogg"),
        (b"ID3\x04\x00", "audio/mpeg"),
        (b"\xff\xfb\x90\x64", "audio/mpeg"),
        ("plain words, ünïcode\n\tand tabs".encode(), "text/plain"),
        ("cut in the middle: é".encode()[:-1], "text/plain"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'>", "text/plain"),  # never image/svg
        (b"\x7fELF\x02\x01\x01", "application/octet-stream"),
        (b"PK\x03\x04", "application/octet-stream"),
        (b"text with a \x00 byte", "application/octet-stream"),
        (b"", "application/octet-stream"),
    ],
)
def test_sniff(head: bytes, media_type: str) -> None:
    assert sniff(head) == media_type


@pytest.mark.parametrize(
    ("name", "clean"),
    [
        ("photo.png", "photo.png"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\ada\\cv.pdf", "cv.pdf"),
        ('a"b;c\r\nd.txt', "abcd.txt"),
        ("...", None),
        ("", None),
        (None, None),
    ],
)
def test_clean_filename(name: str | None, clean: str | None) -> None:
    assert clean_filename(name) == clean


def test_thumbnail_sizes_round_up() -> None:
    assert [thumbnail_size(n) for n in (1, 64, 65, 256, 700, 5000)] == [
        64,
        64,
        128,
        256,
        1024,
        1024,
    ]
