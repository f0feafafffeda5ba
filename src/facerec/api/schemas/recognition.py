"""Identification and verification contract: recognize, recognize-all, compare.

Field names follow the seed's Face Recognition router; additions are optional.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from facerec.api.schemas.common import BoundingBox, ImageInfo, Landmarks, LivenessOut, QualityOut
from facerec.domain.probes import ProcessingMode

IMG = "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQAAAQABAAD/2wBD..."


NO_NS = ConfigDict(protected_namespaces=())


class FaceInfo(BaseModel):
    bbox: BoundingBox = Field(description="The face used: the photo's most prominent face.")
    confidence: float
    quality: QualityOut
    liveness: LivenessOut | None = None
    prominence: float | None = Field(
        None, description="0-1: size x centrality x detector confidence x quality."
    )
    faces_in_image: int | None = Field(
        None, description="Faces detected in the photo (others never make it fail)."
    )


class RecognizeRequest(BaseModel):
    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "face_image_base64": IMG,
                    "gallery": "default",
                    "top_k": 5,
                    "target_fpir": 0.01,
                }
            ]
        },
    )

    face_image_base64: str
    gallery: str | dict[str, list[list[float]]] | None = Field(
        None,
        description="A collection name, or an inline map person id → embeddings; "
        "omitted: the `default` collection.",
    )
    model_name: str = "auto"
    top_k: int = Field(5, ge=1, le=100)
    target_fpir: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="Wanted false-positive identification rate: the share of strangers that "
        "may be named as someone, for this gallery's size. Default 0.01.",
    )
    similarity_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="A fixed threshold instead of target_fpir (0.5 is the model's 1:1 "
        "threshold; it does not grow stricter with the gallery).",
    )
    min_margin: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="When the runner-up also clears the threshold, the best must lead it by "
        "this much similarity, or the answer is unknown (ambiguous).",
    )
    processing_mode: ProcessingMode = ProcessingMode.BALANCED
    check_liveness: bool | None = None
    min_quality: float = Field(
        0.0, ge=0.0, le=100.0, description="Refuse faces below this quality."
    )


class MatchOut(BaseModel):
    person_id: str
    person_name: str | None = None
    employee_id: str | None = None
    collection: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    face_id: str | None = None
    similarity: float
    distance: float
    margin: float | None = Field(
        None, description="Similarity above the next person's (None for the last match)."
    )
    is_match: bool = Field(description="Clears the operating point's threshold.")
    faces: int = Field(1, description="Faces in the person's template (all are scored).")
    nearest_distance: float = Field(description="Distance of the person's nearest face.")


class OperatingPointOut(BaseModel):
    rule: str = Field(description="`target_fpir` or `similarity_threshold`.")
    target_fpir: float | None
    similarity_threshold: float = Field(description="The threshold used, as a similarity.")
    distance_threshold: float
    gallery_size: int = Field(
        description="Persons with a face in the searched collection and embedding space."
    )
    comparisons: int = Field(description="Faces searched: a stranger's chances to be named.")
    expected_fpir: float | None = Field(
        description="Share of strangers expected to be named at this threshold."
    )
    fmr_at_threshold: float | None
    extrapolated: bool = Field(
        description="The FMR is below what the calibration data shows (tail model)."
    )
    capped_at_verification: bool = Field(
        description="The FPIR threshold would have been looser than the 1:1 one."
    )
    min_margin: float
    decided_by: str = Field(description="`threshold` or `margin` (ambiguous runner-up).")
    calibration: str | None


class RecognizeResponse(BaseModel):
    model_config = NO_NS

    success: bool = True
    matches_found: int
    matches: list[MatchOut]
    best_match: MatchOut | None
    unknown: bool = Field(description="True when no one clears the threshold (open set).")
    confidence_scores: list[float]
    model_used: str
    embedding_space: str
    face: FaceInfo
    faces_in_image: int
    operating_point: OperatingPointOut
    processing_time: float


class CompareRequest(BaseModel):
    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "face1_image_base64": IMG,
                    "face2_image_base64": IMG,
                    "model_name": "auto",
                    "processing_mode": "balanced",
                }
            ]
        },
    )

    face1_image_base64: str = Field(
        description="First photo, base64 (a `data:image/...;base64,` prefix is accepted); "
        "its most prominent face is used."
    )
    face2_image_base64: str = Field(description="Second photo, same rules.")
    model_name: str = Field("auto", description="Embedder: `auto`, `dlib_resnet`, ...")
    processing_mode: ProcessingMode = Field(
        ProcessingMode.BALANCED,
        description="`fast`, `balanced` or `accurate` (mirror-averaged embeddings).",
    )


class CompareResponse(BaseModel):
    model_config = NO_NS

    success: bool = True
    is_same_person: bool
    similarity_score: float
    distance: float
    threshold: float = Field(description="The model's calibrated distance threshold.")
    confidence: float = Field(description="Confidence in is_same_person, 0.5-1.")
    false_match_rate: float | None = Field(
        None, description="Share of different-person pairs at least this close (calibration)."
    )
    model_used: str
    face1: FaceInfo
    face2: FaceInfo
    processing_time: float


class TagOptionsIn(BaseModel):
    """How every face of a photo is identified (recognize-all, stored photos)."""

    model_config = NO_NS

    collection: str = Field("default", description="The gallery every face is searched in.")
    model_name: str = "auto"
    top_k: int = Field(3, ge=1, le=20)
    target_fpir: float | None = Field(
        None, gt=0.0, lt=1.0, description="As in recognize; default 0.01."
    )
    similarity_threshold: float | None = Field(None, ge=0.0, le=1.0)
    min_margin: float = Field(0.05, ge=0.0, le=1.0)
    max_faces: int = Field(50, ge=1, le=200)
    min_quality: float = Field(
        0.0, ge=0.0, le=100.0, description="Faces below it get no identity (reason low_quality)."
    )
    processing_mode: ProcessingMode = ProcessingMode.BALANCED


class RecognizeAllRequest(TagOptionsIn):
    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [{"face_image_base64": IMG, "collection": "default", "max_faces": 20}]
        },
    )

    face_image_base64: str


class FaceIdentityOut(BaseModel):
    index: int = Field(description="Position among the detected faces.")
    bbox: BoundingBox
    confidence: float
    landmarks: Landmarks | None = None
    quality: QualityOut
    best_match: MatchOut | None
    unknown: bool
    candidates: list[MatchOut]
    reason: str | None = Field(
        None,
        description="Why no identity was tried: `too_small`, `low_detector_score`, `low_quality`.",
    )
    decided_by: str = Field(
        description="`threshold`, `margin` (ambiguous) or `assignment` (a stronger face of the "
        "photo took the person)."
    )


class RecognizeAllResponse(BaseModel):
    model_config = NO_NS

    success: bool = True
    faces_detected: int
    faces_identified: int
    faces: list[FaceIdentityOut]
    model_used: str
    embedding_space: str
    operating_point: OperatingPointOut
    image_info: ImageInfo
    processing_time: float
