"""Persons and collections contract."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

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
    person_name: str | None = Field(None, min_length=1, max_length=200)
    metadata: dict[str, Any] | None = None
    department: str | None = None
    position: str | None = None


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
    name: str = Field(min_length=1, max_length=64)
    description: str = ""


class CollectionOut(BaseModel):
    name: str
    description: str
    person_count: int
    created_at: datetime


class CollectionListResponse(BaseModel):
    success: bool = True
    collections: list[CollectionOut]
