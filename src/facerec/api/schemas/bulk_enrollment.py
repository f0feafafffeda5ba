"""Bulk enrollment contract: ``enroll-batch`` (base64 photos in JSON) and ``enroll-batch-upload``
(the photos as multipart files, the persons as a JSON form field that points at them)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from facerec.api.schemas.enrollment import GUARD_HELP, ImageResult, WarningOut
from facerec.api.schemas.persons import PersonOut
from facerec.api.schemas.recognition import IMG, NO_NS
from facerec.domain.bulk_enrollment import PersonStatus
from facerec.domain.enrollment_values import GuardPolicy
from facerec.domain.probes import ProcessingMode
from facerec.errors import InvalidInputError


class BatchPersonFields(BaseModel):
    """What a batch says about one person, whichever way its photos come."""

    # Checked per person, not here: a bad value rejects that person only (invalid_name,
    # invalid_value, invalid_person_id), never the batch.
    person_name: str = Field(description="1-200 characters.")
    person_id: str | None = Field(
        None,
        description="An existing person of the collection: the photos are added to it. A new "
        "id: the person is created with it. Omitted: a new person with a UUID.",
    )
    employee_id: str | None = Field(None, description="At most 64 characters.")
    department: str | None = Field(None, description="At most 200 characters.")
    position: str | None = Field(None, description="At most 200 characters.")
    metadata: dict[str, Any] | None = None


class BatchPersonIn(BatchPersonFields):
    images: list[str] = Field(min_length=1, description="Base64 photos, one face each.")


class BatchPersonFiles(BatchPersonFields):
    files: list[int] = Field(
        min_length=1, description="Positions (from 0) of this person's photos among the files."
    )


class BatchOptions(BaseModel):
    model_config = NO_NS

    collection: str = Field("default", description="Gallery every person of the batch is in.")
    model_name: str = Field("auto", description="Embedder, as in add-face.")
    processing_mode: ProcessingMode = ProcessingMode.BALANCED
    check_liveness: bool | None = Field(None, description="Reject spoofs; default from settings.")
    on_duplicate: GuardPolicy = Field(
        GuardPolicy.WARN,
        description="A new person whose faces already match another person strictly: `warn` "
        "creates it with a warning, `reject` rejects that person (`possible_duplicate`).",
    )
    on_inconsistent: GuardPolicy = Field(
        GuardPolicy.WARN,
        description="A photo far from the person's other photos or faces. "
        + GUARD_HELP
        + " (`reject` rejects that photo only.)",
    )


class EnrollBatchRequest(BatchOptions):
    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "collection": "staff",
                    "persons": [
                        {"person_name": "Grace Hopper", "employee_id": "E-1906", "images": [IMG]},
                        {"person_name": "Eileen Collins", "images": [IMG, IMG]},
                    ],
                }
            ]
        },
    )

    persons: list[BatchPersonIn] = Field(min_length=1)


class BatchPersonResult(BaseModel):
    index: int = Field(description="The person's position in the request.")
    status: PersonStatus = Field(
        description="`created`, `added` (photos appended to an existing person) or `rejected` "
        "(nothing of this person was written)."
    )
    person: PersonOut | None = None
    reason: str | None = Field(None, description="Error code when rejected.")
    message: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    images_accepted: int
    images_rejected: int
    results: list[ImageResult] = Field(description="One per photo, in the order sent.")
    warnings: list[WarningOut] = Field(default_factory=list)


class EnrollBatchResponse(BaseModel):
    model_config = NO_NS

    success: bool = True
    collection: str
    persons_total: int
    persons_created: int
    persons_added: int
    persons_rejected: int
    images_total: int
    images_accepted: int
    images_rejected: int
    results: list[BatchPersonResult]
    model_used: str
    embedding_space: str
    processing_time: float = Field(description="Seconds, wall clock.")


PERSONS_FILES = TypeAdapter(list[BatchPersonFiles])


def persons_form(raw: str, files: int) -> list[BatchPersonFiles]:
    """The multipart ``persons`` field: 400 ``invalid_batch`` unless it is a JSON list of
    persons whose ``files`` are positions of the ``files`` uploaded."""
    try:
        persons = PERSONS_FILES.validate_python(json.loads(raw))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise InvalidInputError(
            "persons must be a JSON list of persons, each with person_name and files",
            code="invalid_batch",
            error=str(exc)[:500],
        ) from exc
    if not persons:
        raise InvalidInputError("persons is empty", code="invalid_batch")
    for index, person in enumerate(persons):
        if any(not 0 <= f < files for f in person.files):
            raise InvalidInputError(
                f"person {index} names a file that was not sent ({files} files)",
                code="invalid_batch",
                person=index,
            )
    return persons
