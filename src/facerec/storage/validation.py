"""What may be stored: every value written can be read back and returned, on every backend.

PostgreSQL refuses NUL characters in text and JSONB, and both backends fail on lone surrogates
(they cannot be encoded as UTF-8), while SQLite would keep a string of any length. So each field
has one length limit and one set of rules, checked here before anything reaches the database;
SQLite and PostgreSQL then accept and refuse exactly the same inputs. Pure functions: this module
imports nothing of ours but the errors.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Final

from facerec.errors import InvalidValueError

NAME_MAX: Final = 200
EMPLOYEE_ID_MAX: Final = 64
DEPARTMENT_MAX: Final = 200
POSITION_MAX: Final = 200
DESCRIPTION_MAX: Final = 1000

METADATA_MAX_BYTES: Final = 16 * 1024  # serialised as compact UTF-8 JSON
METADATA_MAX_DEPTH: Final = 5  # the metadata object itself is depth 1
METADATA_MAX_KEYS: Final = 64  # per object
METADATA_KEY_MAX: Final = 256  # characters in one key
FLOAT_MAX: Final = 1e16  # from here on floats serialise with an exponent


def unicode_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text on every backend, or None."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (lone surrogate)"
    return None


def check_text(
    value: str, field: str, max_length: int, *, code: str = "invalid_value", required: bool = False
) -> str:
    """A single-line text field: valid Unicode, no NUL, at most ``max_length`` characters."""
    if not isinstance(value, str):
        raise InvalidValueError(f"{field} must be a string", code=code, field=field)
    problem = unicode_problem(value)
    if problem is not None:
        raise InvalidValueError(f"{field} {problem}", code=code, field=field)
    if len(value) > max_length:
        raise InvalidValueError(
            f"{field} has {len(value)} characters; at most {max_length}",
            code=code,
            field=field,
            limit=max_length,
        )
    if required and not value.strip():
        raise InvalidValueError(f"{field} must not be empty", code=code, field=field)
    return value


def check_optional_text(value: str | None, field: str, max_length: int) -> str | None:
    return None if value is None else check_text(value, field, max_length)


def check_person_name(name: str) -> str:
    return check_text(name, "name", NAME_MAX, code="invalid_name", required=True)


def check_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON object that round-trips unchanged: string keys, finite numbers, no NUL, valid
    Unicode, at most :data:`METADATA_MAX_DEPTH` levels, :data:`METADATA_MAX_KEYS` keys per object
    and :data:`METADATA_MAX_BYTES` bytes once serialised."""
    if not isinstance(metadata, Mapping):
        raise _metadata_error("metadata must be a JSON object", "")
    value = dict(metadata)
    _check_node(value, "", 1)
    try:
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:  # defensive: the walk above accepts only JSON types
        raise _metadata_error(f"metadata cannot be serialised as JSON: {exc}", "") from exc
    size = len(encoded.encode("utf-8"))
    if size > METADATA_MAX_BYTES:
        raise InvalidValueError(
            f"metadata is {size} bytes as JSON; at most {METADATA_MAX_BYTES}",
            code="invalid_metadata",
            limit_bytes=METADATA_MAX_BYTES,
            size_bytes=size,
        )
    return value


def _check_node(node: Any, path: str, depth: int) -> None:
    if node is None or isinstance(node, bool | int):
        return
    if isinstance(node, float):
        if not math.isfinite(node):
            raise _metadata_error("metadata numbers must be finite (no NaN or infinity)", path)
        if abs(node) >= FLOAT_MAX:
            # PostgreSQL's JSONB gives such a float back as an integer of another value.
            raise _metadata_error(
                "metadata fractional numbers must be below 1e16 in magnitude "
                "(send larger ones as integers or strings)",
                path,
            )
        return
    if isinstance(node, str):
        problem = unicode_problem(node)
        if problem is not None:
            raise _metadata_error(f"a metadata string {problem}", path)
        return
    if depth > METADATA_MAX_DEPTH:
        raise _metadata_error(
            f"metadata is nested deeper than {METADATA_MAX_DEPTH} levels",
            path,
            limit=METADATA_MAX_DEPTH,
        )
    if isinstance(node, Mapping):
        if len(node) > METADATA_MAX_KEYS:
            raise _metadata_error(
                f"a metadata object has {len(node)} keys; at most {METADATA_MAX_KEYS}",
                path,
                limit=METADATA_MAX_KEYS,
            )
        for key, child in node.items():
            if not isinstance(key, str):
                raise _metadata_error("metadata keys must be strings", path)
            problem = unicode_problem(key)
            if problem is not None:
                raise _metadata_error(f"a metadata key {problem}", path)
            if len(key) > METADATA_KEY_MAX:
                raise _metadata_error(
                    f"a metadata key is longer than {METADATA_KEY_MAX} characters", path
                )
            _check_node(child, f"{path}.{key}" if path else key, depth + 1)
        return
    if isinstance(node, list | tuple):
        for index, child in enumerate(node):
            _check_node(child, f"{path}[{index}]", depth + 1)
        return
    raise _metadata_error(f"metadata values cannot be {type(node).__name__}", path)


def _metadata_error(message: str, path: str, **details: Any) -> InvalidValueError:
    # The path is echoed only as far as it is printable: it may hold the bad key itself.
    safe = path.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return InvalidValueError(message, code="invalid_metadata", path=safe[:200], **details)
