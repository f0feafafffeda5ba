"""Anti-spoofing (passive liveness) contract."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from facerec.api.schemas.common import BoundingBox, ImageInfo

IMG = "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQAAAQABAAD/2wBD..."


class LivenessRequest(BaseModel):
    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={"examples": [{"image_base64": IMG, "threshold": 0.5}]},
    )

    image_base64: str
    detector: str = Field("auto", description="Face detector used to find the faces.")
    threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="live_score ≥ threshold is live; default from settings."
    )
    conf_threshold: float = Field(0.5, ge=0.0, le=1.0)
    max_faces: int = Field(20, ge=1, le=100)


class LivenessFace(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    bbox: BoundingBox
    confidence: float
    is_live: bool
    live_score: float = Field(description="0-1: the models' averaged probability of a live face.")
    threshold: float
    model_used: str
    per_model: dict[str, float] = Field(description="Each model's live probability.")
    reason: str | None = Field(
        None, description="`insufficient_context`: a tight face crop, no verdict possible."
    )


class LivenessResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    success: bool = True
    faces_detected: int
    faces: list[LivenessFace]
    model_used: str
    detector_used: str
    processing_time: float
    timings: dict[str, float]
    image_info: ImageInfo
    filename: str | None = None
