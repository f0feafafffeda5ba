"""What the sync and async clients share: one request description (:class:`Call`) and its JSON
and multipart forms (:func:`json_call`, :func:`upload_call`, used by every endpoint module), images
in every accepted form, the typed error, and the retry rule for 429/503."""

from __future__ import annotations

import base64
import io
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx
from PIL import Image
from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

# bytes of an encoded image, a path to one, or a PIL image (sent as PNG, lossless)
ImageInput = bytes | str | os.PathLike[str] | Image.Image

RETRY_STATUSES = frozenset({429, 503})
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_RETRIES = 3
MAX_RETRY_WAIT_S = 30.0  # a Retry-After above this is cut to it: a client never sleeps for long
FIRST_BACKOFF_S = 0.5


class FaceRecApiError(Exception):
    """Any answer that is not a success, as the service's error envelope says it:
    ``{"success": false, "error": {"code", "message", "details"}}``."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details: dict[str, Any] = details or {}

    @classmethod
    def from_response(cls, response: httpx.Response) -> FaceRecApiError:
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return cls(
                response.status_code,
                str(error.get("code", "error")),
                str(error.get("message", "")),
                error.get("details") if isinstance(error.get("details"), dict) else {},
            )
        text = response.text[:500]
        return cls(response.status_code, f"http_{response.status_code}", text or "no body")


@dataclass(frozen=True)
class BatchPerson:
    """One person of :meth:`FaceRecClient.enroll_batch`: a new person (``person_id`` omitted or
    new) or photos for an existing one."""

    person_name: str
    images: list[ImageInput]
    person_id: str | None = None
    employee_id: str | None = None
    department: str | None = None
    position: str | None = None
    metadata: dict[str, Any] | None = None


def image_bytes(image: ImageInput) -> bytes:
    """The encoded bytes of an image given as bytes, a path or a PIL image."""
    if isinstance(image, bytes | bytearray):
        return bytes(image)
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    return Path(image).read_bytes()


def image_name(image: ImageInput, default: str = "image") -> str:
    if isinstance(image, str | os.PathLike):
        return Path(image).name
    return default


def image_b64(image: ImageInput) -> str:
    return base64.b64encode(image_bytes(image)).decode("ascii")


def form_value(value: Any) -> str:
    """A multipart form field as the API parses it (JSON for objects, lower-case booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


@dataclass(frozen=True)
class Call(Generic[M]):
    """One API request and the model its success answer parses into."""

    method: str
    path: str
    model: type[M]
    json: dict[str, Any] | None = None
    data: dict[str, str] | None = None
    files: list[tuple[str, tuple[str, bytes]]] | None = None
    params: dict[str, Any] | None = None
    # Enrollment: an Idempotency-Key (one UUID for every attempt), so a retry never enrolls twice.
    idempotent: bool = False
    # Parse these non-2xx statuses as the model too (/ready answers its body with 503).
    also_ok: frozenset[int] = field(default_factory=frozenset)

    def headers(self) -> dict[str, str]:
        return {"Idempotency-Key": str(uuid.uuid4())} if self.idempotent else {}

    def retry_on_transport_error(self) -> bool:
        """Safe to send again when no answer came: reads, deletes, and idempotent enrollment."""
        return self.idempotent or self.method in ("GET", "DELETE")

    def parse(self, response: httpx.Response) -> M:
        if response.is_success or response.status_code in self.also_ok:
            return self.model.model_validate(response.json())
        raise FaceRecApiError.from_response(response)


def compact(values: dict[str, Any]) -> dict[str, Any]:
    """Leave out options the caller did not set, so the service's defaults apply."""
    return {k: v for k, v in values.items() if v is not None}


def multipart(
    fields: dict[str, Any], files: dict[str, ImageInput]
) -> tuple[dict[str, str], list[tuple[str, tuple[str, bytes]]]]:
    data = {k: form_value(v) for k, v in compact(fields).items()}
    parts = [(name, (image_name(img, name), image_bytes(img))) for name, img in files.items()]
    return data, parts


def json_call(method: str, path: str, model: Any, body: dict[str, Any], **kw: Any) -> Call[Any]:
    return Call(method, path, model, json=compact(body), **kw)


def upload_call(
    path: str, model: Any, fields: dict[str, Any], files: dict[str, ImageInput], **kw: Any
) -> Call[Any]:
    data, parts = multipart(fields, files)
    return Call("POST", path, model, data=data, files=parts, **kw)


def retry_wait(response: httpx.Response | None, attempt: int) -> float:
    """Seconds before the next attempt: the service's Retry-After when it sent one (bounded),
    else an exponential backoff from :data:`FIRST_BACKOFF_S`."""
    if response is not None:
        header = response.headers.get("Retry-After")
        if header is not None:
            try:
                return min(max(float(header), 0.0), MAX_RETRY_WAIT_S)
            except ValueError:
                pass
    return float(min(FIRST_BACKOFF_S * 2**attempt, MAX_RETRY_WAIT_S))


def should_retry(call: Call[Any], response: httpx.Response) -> bool:
    return response.status_code in RETRY_STATUSES and response.status_code not in call.also_ok


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"X-API-Key": api_key} if api_key else {}
