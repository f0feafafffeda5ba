"""What an event may carry: ids, names, scores, boxes and times as plain JSON, never a face.

The bus passes every event's ``data`` through :func:`clean_data` before queueing it, so the rule
holds whoever publishes: keys that name image or embedding content are dropped (at any depth),
and a value that could only be face data (bytes, arrays, a long run of numbers, a data URL or a
very long string) rejects the whole event rather than leaking part of it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from enum import Enum
from typing import Any
from uuid import UUID

import numpy as np

# Keys never sent, at any depth: the face itself or its template. Compared case-insensitively,
# also as a suffix (``face_image``, ``probe_embedding``), so a renamed field stays caught.
FORBIDDEN_KEYS = frozenset(
    {
        "image",
        "images",
        "image_base64",
        "face_image_base64",
        "thumbnail",
        "jpeg",
        "png",
        "pixels",
        "embedding",
        "embeddings",
        "vector",
        "vectors",
        "template",
        "templates",
        "descriptor",
        "descriptors",
    }
)
# A list of more numbers than this is taken for an embedding (boxes have 4, landmarks 10).
MAX_NUMBERS_IN_A_LIST = 32
MAX_DEPTH = 8
# A longer string is taken for an encoded image (names and ids are far shorter).
MAX_STRING_CHARS = 4096


class UnsafeEventDataError(ValueError):
    """``data`` holds something that may be face data or is not JSON (the event is rejected)."""


def is_forbidden_key(key: str) -> bool:
    lowered = key.lower()
    return lowered in FORBIDDEN_KEYS or any(
        lowered.endswith(("_" + name, "-" + name)) for name in FORBIDDEN_KEYS
    )


def clean_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-ready copy of ``data`` without image/embedding keys; raises
    :class:`UnsafeEventDataError` for bytes, arrays, long numeric lists and non-JSON values."""
    return _clean_mapping(data, "data", 0)


def _clean_mapping(data: Mapping[Any, Any], where: str, depth: int) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise UnsafeEventDataError(f"{where}: nested deeper than {MAX_DEPTH}")
    cleaned: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise UnsafeEventDataError(f"{where}: key {key!r} is not a string")
        if is_forbidden_key(key):
            continue
        cleaned[key] = _clean_value(value, f"{where}.{key}", depth + 1)
    return cleaned


def _clean_value(value: Any, where: str, depth: int) -> Any:
    if isinstance(value, str):
        if len(value) > MAX_STRING_CHARS or value[:11].lower() == "data:image/":
            raise UnsafeEventDataError(
                f"{where}: a {len(value)}-character string (an encoded image?)"
            )
        return value
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bytes | bytearray | memoryview | np.ndarray):
        raise UnsafeEventDataError(
            f"{where}: {type(value).__name__} (images and arrays never leave)"
        )
    if isinstance(value, np.generic):
        return _clean_value(value.item(), where, depth)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum):
        return _clean_value(value.value, where, depth)
    if isinstance(value, Mapping):
        return _clean_mapping(value, where, depth)
    if isinstance(value, list | tuple):
        items = [_clean_value(item, f"{where}[]", depth + 1) for item in value]
        numbers = sum(1 for item in items if isinstance(item, int | float))
        if numbers > MAX_NUMBERS_IN_A_LIST:
            raise UnsafeEventDataError(f"{where}: {numbers} numbers in one list (an embedding?)")
        return items
    raise UnsafeEventDataError(f"{where}: {type(value).__name__} is not JSON data")
