"""Typed errors with stable codes.

Domain and inference code raise these; only ``facerec.api.errors`` maps them to HTTP status codes
and the JSON envelope ``{"success": false, "error": {"code", "message", "details"}}``. The class
says the kind of failure (and so the status); ``code`` is the stable machine-readable reason.
"""

from __future__ import annotations

from typing import Any


class FaceRecError(Exception):
    """Base class. ``code`` is stable and documented; ``message`` is for people."""

    default_code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details: dict[str, Any] = details


class InvalidInputError(FaceRecError):
    """The request is well-formed JSON but its content cannot be used (400)."""

    default_code = "invalid_input"


class InvalidImageError(InvalidInputError):
    """Bytes that are not a decodable image of a supported format (400/415)."""

    default_code = "invalid_image"


class UnsupportedFormatError(InvalidImageError):
    default_code = "unsupported_format"


class PayloadTooLargeError(InvalidInputError):
    """Body or image beyond the configured byte or pixel limit (413)."""

    default_code = "payload_too_large"


class InvalidValueError(InvalidInputError):
    """A field that cannot be stored and returned as sent: too long, too deep, NUL characters,
    invalid Unicode, not JSON (422). Refused before anything is written."""

    default_code = "invalid_value"


class FaceRejectedError(InvalidInputError):
    """An image decoded fine but its face cannot be used: no face, several faces, low quality,
    spoof (422)."""

    default_code = "face_rejected"


class NotFoundError(FaceRecError):
    default_code = "not_found"


class ConflictError(FaceRecError):
    default_code = "conflict"


class ModelNotAvailableError(FaceRecError):
    """A model name that the service does not know, or knows but has not installed (400)."""

    default_code = "model_not_available"


class ServiceUnavailableError(FaceRecError):
    """Not initialised yet, or a dependency is down (503)."""

    default_code = "service_unavailable"


class StorageUnavailableError(ServiceUnavailableError):
    """The database cannot be reached right now (503 with Retry-After); retrying later is safe."""

    default_code = "storage_unavailable"


class OverloadedError(FaceRecError):
    """Too many inference jobs waiting (429)."""

    default_code = "overloaded"


class ModelLoadError(FaceRecError):
    """A model file is present but cannot be loaded (500: the operator's problem, not the
    client's)."""

    default_code = "model_load_failed"


class UnauthorizedError(FaceRecError):
    """No API key, or one that is not valid, expired or revoked (401)."""

    default_code = "unauthorized"


class ForbiddenError(FaceRecError):
    """A valid key that may not do this: a scope, tenant or collection it lacks (403)."""

    default_code = "forbidden"


class RateLimitedError(OverloadedError):
    """The API key used up its request budget (429); ``retry_after_s`` says when a request
    will be allowed again."""

    default_code = "rate_limited"
