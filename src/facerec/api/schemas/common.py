"""Shapes shared by every endpoint: the error envelope and face geometry."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable reason, e.g. `invalid_image`.")
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorResponse(BaseModel):
    success: bool = False
    error: ErrorBody


class BoundingBox(BaseModel):
    x1: float
    y1: float
    x2: float
    y2: float
    width: float
    height: float


class Point(BaseModel):
    x: float
    y: float


class Landmarks(BaseModel):
    left_eye: Point
    right_eye: Point
    nose: Point
    mouth_left: Point
    mouth_right: Point


class QualityOut(BaseModel):
    score: float = Field(description="0-100; weighted mean of the factors.")
    factors: dict[str, float] = Field(
        description="Each 0-100: size, sharpness, exposure, pose, detector."
    )
    reasons: list[str] = Field(
        default_factory=list,
        description="Quality-bar misses: too_small, blurred, overexposed, underexposed, "
        "extreme_pose, occluded_landmarks, low_detector_score.",
    )


class LivenessOut(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    is_live: bool
    live_score: float
    threshold: float
    model_used: str
    per_model: dict[str, float] = Field(default_factory=dict)
    reason: str | None = Field(
        None,
        description="Why there is no live verdict: `insufficient_context` for a tight face "
        "crop (the model needs the face's surroundings).",
    )


class ImageInfo(BaseModel):
    width: int
    height: int
    channels: int
    format: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Bad input (invalid base64, not an image, ...)"},
    401: {"model": ErrorResponse, "description": "No valid API key (when auth is on)"},
    403: {"model": ErrorResponse, "description": "The key lacks the scope, or a cross-site post"},
    413: {"model": ErrorResponse, "description": "File or image over the size limit"},
    415: {"model": ErrorResponse, "description": "Unsupported image format (GIF, SVG, PDF, ...)"},
    422: {"model": ErrorResponse, "description": "Validation error or unusable face"},
    429: {"model": ErrorResponse, "description": "Inference queue full or rate limit; retry"},
    503: {
        "model": ErrorResponse,
        "description": "Not initialised yet, storage unavailable, or liveness unavailable",
    },
}
# Routes that address stored things (collections, persons, faces) or write them.
GALLERY_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    404: {"model": ErrorResponse, "description": "No such collection, person or face"},
    409: {"model": ErrorResponse, "description": "Conflict (duplicate, guard, concurrent edit)"},
}

# Error codes named in route descriptions (the full table: docs/errors.md).
IMAGE_ERRORS = (
    "400 `empty_image`, `invalid_base64`, `invalid_image`, `corrupt_image`, `image_too_small`, "
    "`unknown_model`, `model_not_installed`; 413 `file_too_large`, `payload_too_large`, "
    "`image_too_large`; 415 `unsupported_format`; 422 `validation_error`; 429 `overloaded`, "
    "`rate_limited`; 503 `not_ready`"
)
ACCESS_ERRORS = (
    "401 `unauthorized`, `invalid_api_key`, `key_expired`, `key_revoked`; 403 `insufficient_scope`"
)
