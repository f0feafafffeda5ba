"""Request and response bodies of stored photos and suggested persons (``/api/photos``,
``/api/photo-suggestions``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from facerec.api.schemas.common import BoundingBox
from facerec.api.schemas.persons import PersonOut
from facerec.api.schemas.recognition import IMG, MatchOut, OperatingPointOut, TagOptionsIn

NO_NS = ConfigDict(protected_namespaces=())
PHOTO_ID = Field(
    min_length=1,
    max_length=64,
    description="The client's id of the photo (letters, digits, '_.:@-'; per tenant).",
)


class PhotoRequest(TagOptionsIn):
    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [{"photo_id": "post-123", "image_base64": IMG, "collection": "default"}]
        },
    )

    photo_id: str = PHOTO_ID
    image_base64: str
    replace: bool = Field(False, description="Re-tag a stored photo id (else 409 photo_exists).")


class PhotoFaceOut(BaseModel):
    index: int = Field(description="Position among the detected faces.")
    bbox: BoundingBox
    confidence: float
    quality: float
    quality_reasons: list[str]
    reason: str | None = Field(
        None, description="Why no identity was tried: `too_small`, `low_quality`, ..."
    )
    person_id: str | None = None
    person_name: str | None = None
    unknown: bool
    status: str = Field(description="`tagged` (automatic), `confirmed` (by a user) or `unknown`.")
    similarity: float | None = Field(None, description="Of the tagged person, when scored.")
    decided_by: str = Field(
        description="`threshold`, `margin`, `assignment`, `user`, `rejected` or `erased`."
    )
    candidates: list[MatchOut] = Field(description="Top-k; rejected persons never appear.")
    rejected_person_ids: list[str] = Field(default_factory=list)
    suggestion_id: str | None = Field(None, description="The suggested new person it is in.")
    enrolled_face_id: str | None = Field(
        None, description="The person's enrolled face this face became (assign, accept)."
    )


class PhotoImageOut(BaseModel):
    width: int
    height: int
    format: str
    sha256: str


class PhotoResponse(BaseModel):
    model_config = NO_NS

    success: bool = True
    photo_id: str
    collection: str
    faces_detected: int
    faces_identified: int
    faces: list[PhotoFaceOut]
    model_used: str
    embedding_space: str
    image_info: PhotoImageOut
    image_stored: bool
    operating_point: OperatingPointOut | None = Field(
        None, description="Set when this request tagged the photo."
    )
    created_at: datetime
    updated_at: datetime
    processing_time: float | None = None


class PhotoDeletedResponse(BaseModel):
    success: bool = True
    photo_id: str
    deleted_faces: int


class AssignRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"person_id": "emp-0042"}]})

    person_id: str = Field(
        min_length=1,
        max_length=64,
        description="Who this face is: a person of the photo's collection.",
    )


class RejectRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"person_id": "emp-0042"}]})

    person_id: str = Field(min_length=1, max_length=64, description="Who this face is not.")


class AssignResponse(PhotoResponse):
    face_id: str = Field(description="The enrolled face of the person the photo face became.")


class PersonPhotoOut(BaseModel):
    photo_id: str
    collection: str
    face_index: int
    status: str
    decided_by: str
    similarity: float | None
    tagged_at: datetime


class PersonPhotosResponse(BaseModel):
    success: bool = True
    person_id: str
    photos: list[PersonPhotoOut]
    next_cursor: str | None


class SuggestionFaceOut(BaseModel):
    photo_id: str
    index: int
    bbox: BoundingBox
    quality: float


class SuggestionOut(BaseModel):
    suggestion_id: str
    collection: str
    embedding_space: str
    size: int
    cohesion: float = Field(description="Mean similarity over the pairs of its faces.")
    faces: list[SuggestionFaceOut]


class SuggestionListResponse(BaseModel):
    success: bool = True
    suggestions: list[SuggestionOut]


class AcceptRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "person_name": "Ada Lovelace",
                    "person_id": "ada",
                    "metadata": {"source": "photo-suggestion"},
                }
            ]
        }
    )

    person_name: str = Field(min_length=1, max_length=200, description="The new person's name.")
    person_id: str | None = Field(
        None, min_length=1, max_length=64, description="Omit for a new UUID."
    )
    metadata: dict[str, Any] | None = Field(None, description="Optional JSON object.")


class AcceptResponse(BaseModel):
    success: bool = True
    person: PersonOut
    face_ids: list[str]


class DismissResponse(BaseModel):
    success: bool = True
    suggestion_id: str
    dismissed_faces: int
