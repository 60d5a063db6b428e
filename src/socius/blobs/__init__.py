"""Blob stores (the ``BlobStore`` port): local files, S3-compatible object storage; and
image work for attachments (Pillow)."""

from socius.blobs.files import FileBlobStore
from socius.blobs.images import PillowImages
from socius.blobs.s3 import S3BlobStore

__all__ = ["FileBlobStore", "PillowImages", "S3BlobStore"]
