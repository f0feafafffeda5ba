"""The one image input of every route: a base64 string (JSON variant) or an uploaded file
(multipart variant), read within the byte limit. Large bodies are decoded off the event loop:
the base64 text here, and the JSON body itself by :class:`OffloadedJSONRoute`."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response, UploadFile
from fastapi.routing import APIRoute
from pydantic_core import from_json
from starlette.concurrency import run_in_threadpool
from starlette.formparsers import MultiPartParser

from facerec.config import LimitSettings
from facerec.errors import InvalidImageError, PayloadTooLargeError
from facerec.inference.images import decode_base64

# Base64 text (or a JSON body) longer than this is decoded in a worker thread, not on the loop.
OFFLOAD_CHARS = 256 * 1024

ImageSource = str | UploadFile


async def read_upload(upload: UploadFile, limit: int) -> bytes:
    """The file's bytes (one read of at most ``limit`` + 1 bytes: 413 past ``limit``)."""
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLargeError(
            f"upload is larger than the limit of {limit} bytes",
            code="file_too_large",
            limit_bytes=limit,
        )
    if not data:
        raise InvalidImageError("the uploaded file is empty", code="empty_image")
    return data


def keep_uploads_in_memory(limit: int) -> None:
    """Uploaded files up to ``limit`` bytes stay in memory while a request parses its form.

    Starlette spools a file part over 1 MiB to a temporary file on disk, and from then on hands
    each 64 KiB of it to a worker thread to write, then reads it back the same way: ~3 ms of a
    4000 px photo's upload (1.5 MB), more than its whole body path otherwise. The body limits
    already bound what a request holds, and its bytes are read into memory anyway. A class
    setting of Starlette's: it holds for the process (the largest limit asked for)."""
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, limit + 1)


async def image_bytes(source: ImageSource, limits: LimitSettings) -> bytes:
    """The encoded image of a request, from either variant of a route."""
    if isinstance(source, str):
        if len(source) > OFFLOAD_CHARS:
            return await run_in_threadpool(decode_base64, source, limits)
        return decode_base64(source, limits)
    return await read_upload(source, limits.max_upload_bytes)


def parse_json(body: bytes | str) -> Any:
    """``json.loads`` semantics at pydantic-core's speed (a 2 MB base64 body: ~0.3 ms against
    ~5 ms); malformed JSON raises ``json.JSONDecodeError`` as ``json.loads`` does, which FastAPI
    turns into its 422 ``json_invalid``."""
    try:
        return from_json(body)
    except ValueError:
        return json.loads(body)  # the same error, with the position FastAPI reports


class OffloadedJSONRequest(Request):
    """A request whose JSON body is parsed fast, and in a worker thread when it is large (FastAPI
    otherwise runs ``json.loads`` on the event loop before the route sees the body)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            if len(body) > OFFLOAD_CHARS:
                self._json = await run_in_threadpool(parse_json, body)
            else:
                self._json = parse_json(body)
        return self._json


class OffloadedJSONRoute(APIRoute):
    """``APIRouter(route_class=OffloadedJSONRoute)``: the routes' JSON bodies are parsed by
    :class:`OffloadedJSONRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(OffloadedJSONRequest(request.scope, request.receive))

        return route
