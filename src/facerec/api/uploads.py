"""The one image input of every route: a base64 string (JSON variant) or an uploaded file
(multipart variant), read within the byte limit; large base64 bodies are decoded off the event
loop."""

from __future__ import annotations

from fastapi import UploadFile
from starlette.concurrency import run_in_threadpool

from facerec.config import LimitSettings
from facerec.errors import InvalidImageError, PayloadTooLargeError
from facerec.inference.images import decode_base64

CHUNK = 1024 * 1024
# Base64 text longer than this is decoded in a worker thread, not on the event loop.
OFFLOAD_CHARS = 256 * 1024

ImageSource = str | UploadFile


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


async def image_bytes(source: ImageSource, limits: LimitSettings) -> bytes:
    """The encoded image of a request, from either variant of a route."""
    if isinstance(source, str):
        if len(source) > OFFLOAD_CHARS:
            return await run_in_threadpool(decode_base64, source, limits)
        return decode_base64(source, limits)
    return await read_upload(source, limits.max_upload_bytes)
