"""The wire rules of ``/ws/recognize``: close codes, message reading, the one-slot mailbox.

Close codes (README, "Live video"):

====== ===================================================================================
1000   normal closure (the client closed)
1001   the service is shutting down
1003   protocol violation: the first message is not a JSON ``config`` object (binary, not
       JSON, another type), text that is not a JSON object, or an unknown message ``type``
1008   handshake refused: no valid API key, or the key lacks the ``recognize`` scope
       (before the handshake completes, so an HTTP client sees 403)
1009   a message larger than ``streams.max_message_bytes``
1011   unexpected server error
4400   the config is invalid (``invalid_config``), or names a model that is not available
4403   the key may not use the config's collection (``collection_forbidden``)
4404   the collection does not exist (``collection_not_found``)
4408   idle: no message for ``streams.idle_timeout_seconds`` (``idle_timeout``)
4503   the service is not ready, or liveness was asked for and is unavailable
====== ===================================================================================

Application closes (4xxx) are 4000 + the HTTP status the REST API answers for the same error;
the close reason is the error's code and an ``error`` message precedes every close the server
makes after the handshake.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from facerec.api.errors import status_for
from facerec.api.uploads import parse_json
from facerec.errors import FaceRecError

NORMAL = 1000
GOING_AWAY = 1001
UNSUPPORTED_DATA = 1003
POLICY_VIOLATION = 1008
TOO_BIG = 1009
INTERNAL_ERROR = 1011
IDLE_TIMEOUT = 4408
FRAME_FORMATS = frozenset({"JPEG", "PNG"})

T = TypeVar("T")


class CloseStreamError(Exception):
    """Close the socket with ``close_code``, after an ``error`` message carrying ``code``."""

    def __init__(
        self, close_code: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.close_code = close_code
        self.code = code
        self.message = message
        self.details = details or {}

    @classmethod
    def of(cls, error: FaceRecError) -> CloseStreamError:
        status = status_for(error)
        close_code = 4000 + status if status < 500 or status == 503 else INTERNAL_ERROR
        return cls(close_code, error.code, error.message, error.details)


class ClientGoneError(Exception):
    """The client closed the socket."""


@dataclass(frozen=True)
class Message:
    """One message of the client: binary (a frame) or text (parsed JSON object)."""

    data: bytes | None = None
    payload: dict[str, Any] | None = None

    @property
    def kind(self) -> str:
        if self.payload is None:
            return "frame"
        kind = self.payload.get("type")
        if kind is None and "image_base64" in self.payload:
            return "frame"
        return str(kind) if kind is not None else ""


def parse(raw: Mapping[str, Any], max_bytes: int) -> Message:
    """An ASGI ``websocket.receive`` event as a :class:`Message` (or why the socket closes)."""
    if raw.get("type") == "websocket.disconnect":
        raise ClientGoneError()
    data: bytes | None = raw.get("bytes")
    text: str | None = raw.get("text")
    if data is not None:
        if len(data) > max_bytes:
            raise _too_big(len(data), max_bytes)
        return Message(data=data)
    text = text or ""
    size = len(text) if text.isascii() else len(text.encode("utf-8"))
    if size > max_bytes:
        raise _too_big(size, max_bytes)
    try:
        payload = parse_json(text)  # a base64 frame's JSON at pydantic-core's speed
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CloseStreamError(
            UNSUPPORTED_DATA, "invalid_json", f"a text message must be JSON: {exc}"
        ) from exc
    if not isinstance(payload, dict):
        raise CloseStreamError(
            UNSUPPORTED_DATA, "invalid_message", "a message must be a JSON object"
        )
    return Message(payload=payload)


def _too_big(size: int, limit: int) -> CloseStreamError:
    return CloseStreamError(
        TOO_BIG,
        "message_too_big",
        f"a message of {size} bytes is larger than the limit of {limit} bytes",
        {"limit_bytes": limit},
    )


class Mailbox(Generic[T]):
    """One slot, newest wins: a frame put while another waits replaces it (counted dropped)."""

    def __init__(self) -> None:
        self._item: T | None = None
        self._full = asyncio.Event()
        self.dropped = 0

    def put(self, item: T) -> None:
        if self._item is not None:
            self.dropped += 1
        self._item = item
        self._full.set()

    async def wait(self) -> None:
        await self._full.wait()

    def take(self) -> T | None:
        item, self._item = self._item, None
        self._full.clear()
        return item
