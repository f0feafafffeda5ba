"""Reading multipart uploads within the byte limit."""

from __future__ import annotations

from fastapi import UploadFile

from facerec.errors import InvalidImageError, PayloadTooLargeError

CHUNK = 1024 * 1024


async def read_upload(upload: UploadFile, limit: int) -> bytes:
    """The file's bytes; stops reading (413) as soon as it passes ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await upload.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(
                f"upload is larger than the limit of {limit} bytes",
                code="file_too_large",
                limit_bytes=limit,
            )
        chunks.append(chunk)
    if size == 0:
        raise InvalidImageError("the uploaded file is empty", code="empty_image")
    return b"".join(chunks)
