"""Detection request/response contract (compatible with the seed's DetectionRequest)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from facerec.api.schemas.common import (
    BoundingBox,
    ImageInfo,
    Landmarks,
    LivenessOut,
    QualityOut,
)

EXAMPLE_B64 = "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBD..."


class DetectionOptionsIn(BaseModel):
    """Detection options shared by the JSON and the multipart variant."""

    model_config = ConfigDict(protected_namespaces=())

    model_name: str = Field("auto", description="Detector: `auto`, `retinaface`, `hog`, ...")
    conf_threshold: float = Field(0.5, ge=0.0, le=1.0, description="Minimum detector score.")
    iou_threshold: float = Field(0.4, ge=0.0, le=1.0, description="NMS overlap threshold.")
    max_faces: int = Field(50, ge=1, le=1000, description="At most this many faces, best first.")
    min_quality_threshold: float = Field(
        40.0, ge=0.0, le=100.0, description="Faces with a lower quality score are left out."
    )
    return_landmarks: bool = Field(False, description="Include the 5-point landmarks.")
    check_liveness: bool = Field(
        False, description="Add a passive liveness verdict to each face (503 when unavailable)."
    )


class DetectionRequest(DetectionOptionsIn):
    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "image_base64": "data:image/jpeg;base64," + EXAMPLE_B64,
                    "model_name": "auto",
                    "conf_threshold": 0.5,
                    "iou_threshold": 0.4,
                    "max_faces": 50,
                    "min_quality_threshold": 40.0,
                    "return_landmarks": True,
                }
            ]
        },
    )

    image_base64: str = Field(
        description="The image, base64; a `data:image/...;base64,` prefix is accepted."
    )


class DetectedFaceOut(BaseModel):
    bbox: BoundingBox
    confidence: float
    landmarks: Landmarks | None = None
    quality_score: float
    quality: QualityOut
    liveness: LivenessOut | None = None


class DetectionResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    success: bool = True
    faces_detected: int
    faces: list[DetectedFaceOut]
    faces_filtered_low_quality: int = Field(
        description="Faces found but left out for quality below min_quality_threshold."
    )
    model_used: str
    processing_time: float = Field(description="Seconds spent on this request's pipeline.")
    timings: dict[str, float] = Field(description="Seconds per stage.")
    image_info: ImageInfo
    filename: str | None = None
