"""Enrollment contract: add-face (one photo) and register-multiple (an employee, several photos)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from facerec.api.schemas.persons import PersonOut
from facerec.api.schemas.recognition import IMG, NO_NS, FaceInfo
from facerec.domain.enrollment_values import GuardPolicy
from facerec.domain.probes import ProcessingMode


class WarningOut(BaseModel):
    code: str = Field(description="`inconsistent_with_person` or `possible_duplicate`.")
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


GUARD_HELP = (
    "`warn` (default): enroll and answer a warning; `reject`: answer 409 with the same code."
)


class AddFaceRequest(BaseModel):
    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "person_name": "Grace Hopper",
                    "person_id": "emp-0042",
                    "face_image_base64": IMG,
                    "model_name": "auto",
                    "metadata": {"team": "compilers"},
                }
            ]
        },
    )

    person_name: str = Field(min_length=1, max_length=200)
    person_id: str | None = Field(
        None, description="Omit for a new UUID; an existing id appends a face to that person."
    )
    face_image_base64: str
    model_name: str = Field(
        "auto", description="Embedder: `auto`, `dlib_resnet`, `mobilefacenet`..."
    )
    metadata: dict[str, Any] | None = None
    collection: str = Field("default", description="Gallery the person belongs to.")
    fast_mode: bool = Field(
        False, description="Skip the quality bar (same as processing_mode=fast)."
    )
    processing_mode: ProcessingMode = ProcessingMode.BALANCED
    check_liveness: bool | None = Field(None, description="Reject spoofs; default from settings.")
    on_duplicate: GuardPolicy = Field(
        GuardPolicy.WARN,
        description="A new person whose face already matches another person strictly. "
        + GUARD_HELP,
    )
    on_inconsistent: GuardPolicy = Field(
        GuardPolicy.WARN,
        description="A face far from the person's other faces. " + GUARD_HELP,
    )


class AddFaceResponse(BaseModel):
    model_config = NO_NS

    success: bool = True
    person_id: str
    person_name: str
    face_id: str
    embedding_extracted: bool = True
    model_used: str
    face_quality: float
    face: FaceInfo
    person: PersonOut
    embedding_space: str
    warnings: list[WarningOut] = Field(default_factory=list)
    processing_time: float


class RegisterMultipleRequest(BaseModel):
    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "full_name": "Grace Hopper",
                    "employee_id": "E-1906",
                    "department": "Navy",
                    "position": "Rear Admiral",
                    "model_name": "auto",
                    "images": [IMG, IMG],
                    "metadata": {"badge": "A-12"},
                }
            ]
        },
    )

    full_name: str = Field(min_length=1, max_length=200)
    employee_id: str = Field(min_length=1, max_length=64)
    department: str | None = Field(None, max_length=200)
    position: str | None = Field(None, max_length=200)
    model_name: str = "auto"
    images: list[str] = Field(description="Base64 images, one face each.")
    metadata: dict[str, Any] | None = None
    collection: str = "default"
    replace: bool = Field(False, description="Replace an existing employee's faces and record.")
    processing_mode: ProcessingMode = ProcessingMode.BALANCED
    check_liveness: bool | None = None
    on_duplicate: GuardPolicy = Field(GuardPolicy.WARN, description=GUARD_HELP)
    on_inconsistent: GuardPolicy = Field(
        GuardPolicy.WARN,
        description="A photo far from every other photo sent: `warn` accepts it with a "
        "warning, `reject` rejects that photo (reason `inconsistent_with_person`).",
    )


class ImageResult(BaseModel):
    index: int
    accepted: bool
    face_id: str | None = None
    reason: str | None = Field(None, description="Error code when rejected.")
    message: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    face_quality: float | None = None
    warnings: list[WarningOut] = Field(default_factory=list)


class RegisterMultipleResponse(BaseModel):
    model_config = NO_NS

    success: bool = True
    person: PersonOut
    created: bool
    images_total: int
    images_accepted: int
    images_rejected: int
    results: list[ImageResult]
    model_used: str
    warnings: list[WarningOut] = Field(default_factory=list)
    processing_time: float
