"""Persons and collections contract."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from facerec.api.schemas.common import BoundingBox


class PersonOut(BaseModel):
    person_id: str
    person_name: str
    collection: str
    employee_id: str | None = None
    department: str | None = None
    position: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    face_count: int
    created_at: datetime
    updated_at: datetime


class PersonPatchRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "person_name": "Grace B. Hopper",
                    "department": "Research",
                    "metadata": {"team": "compilers", "badge": "A-12"},
                }
            ]
        }
    )

    person_name: str | None = Field(
        None, min_length=1, max_length=200, description="New name; omitted: unchanged."
    )
    metadata: dict[str, Any] | None = Field(
        None,
        description="Replaces the metadata (JSON object, ≤ 16 KiB, 5 levels, 64 keys per "
        "object); omitted: unchanged.",
    )
    department: str | None = Field(None, description="Omitted: unchanged; null clears it.")
    position: str | None = Field(None, description="Omitted: unchanged; null clears it.")


class PersonListResponse(BaseModel):
    success: bool = True
    persons: list[PersonOut]
    next_cursor: str | None


class FaceOut(BaseModel):
    face_id: str
    space: str
    quality: float
    bbox: BoundingBox | None = None
    created_at: datetime


class PersonDetailResponse(BaseModel):
    success: bool = True
    person: PersonOut
    faces: list[FaceOut]


class DeletedResponse(BaseModel):
    success: bool = True
    deleted_persons: int
    deleted_faces: int


class CollectionIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"name": "staff", "description": "Employees of the head office"}]
        }
    )

    name: str = Field(
        min_length=1, max_length=64, description="Collection name, unique within the tenant."
    )
    description: str = Field("", description="Free text, at most 1000 characters.")


class CollectionOut(BaseModel):
    name: str
    description: str
    person_count: int
    created_at: datetime


class CollectionListResponse(BaseModel):
    success: bool = True
    collections: list[CollectionOut]
