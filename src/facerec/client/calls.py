"""Every endpoint of the API, once: its method, path, body and response model.

Both clients turn these into requests; ``options`` are the endpoint's other request fields
(``top_k``, ``target_fpir``, ``processing_mode``, ...) with the API's names, left to the service's
defaults when not given.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from facerec.api.routes.admin import (
    AuditResponse,
    KeyCreatedResponse,
    KeyListResponse,
    KeyRevokedResponse,
)
from facerec.api.routes.migrations import MigrationListResponse, MigrationResponse
from facerec.api.routes.system import Health, ModelsResponse, Readiness
from facerec.api.schemas.bulk_enrollment import EnrollBatchResponse
from facerec.api.schemas.detection import DetectionResponse
from facerec.api.schemas.enrollment import AddFaceResponse, RegisterMultipleResponse
from facerec.api.schemas.liveness import LivenessResponse
from facerec.api.schemas.persons import (
    CollectionListResponse,
    CollectionOut,
    DeletedResponse,
    PersonDetailResponse,
    PersonListResponse,
    PersonOut,
)
from facerec.api.schemas.photos import (
    AcceptResponse,
    AssignResponse,
    DismissResponse,
    PersonPhotosResponse,
    PhotoDeletedResponse,
    PhotoResponse,
    SuggestionListResponse,
)
from facerec.api.schemas.recognition import (
    CompareResponse,
    RecognizeAllResponse,
    RecognizeResponse,
)
from facerec.client._core import (
    BatchPerson,
    Call,
    ImageInput,
    compact,
    image_b64,
    image_bytes,
    image_name,
    multipart,
)

DETECTION = "/api/face-detection"
RECOGNITION = "/api/face-recognition"
LIVENESS = "/api/face-antispoofing"
PHOTOS = "/api/photos"
SUGGESTIONS = "/api/photo-suggestions"
ADMIN = "/api/admin"


def _json(method: str, path: str, model: Any, body: dict[str, Any], **kw: Any) -> Call[Any]:
    return Call(method, path, model, json=compact(body), **kw)


def _upload(
    path: str, model: Any, fields: dict[str, Any], files: dict[str, ImageInput], **kw: Any
) -> Call[Any]:
    data, parts = multipart(fields, files)
    return Call("POST", path, model, data=data, files=parts, **kw)


# --- detection, liveness -------------------------------------------------------------------


def detect(image: ImageInput, options: dict[str, Any]) -> Call[DetectionResponse]:
    body = {"image_base64": image_b64(image), **options}
    return _json("POST", f"{DETECTION}/detect", DetectionResponse, body)


def detect_upload(image: ImageInput, options: dict[str, Any]) -> Call[DetectionResponse]:
    return _upload(f"{DETECTION}/detect-upload", DetectionResponse, options, {"file": image})


def liveness(image: ImageInput, options: dict[str, Any]) -> Call[LivenessResponse]:
    body = {"image_base64": image_b64(image), **options}
    return _json("POST", f"{LIVENESS}/detect", LivenessResponse, body)


def liveness_upload(image: ImageInput, options: dict[str, Any]) -> Call[LivenessResponse]:
    return _upload(f"{LIVENESS}/detect-upload", LivenessResponse, options, {"file": image})


# --- enrollment ------------------------------------------------------------------------------


def add_face(image: ImageInput, person_name: str, options: dict[str, Any]) -> Call[AddFaceResponse]:
    body = {"person_name": person_name, "face_image_base64": image_b64(image), **options}
    return _json("POST", f"{RECOGNITION}/add-face", AddFaceResponse, body, idempotent=True)


def add_face_upload(
    image: ImageInput, person_name: str, options: dict[str, Any]
) -> Call[AddFaceResponse]:
    fields = {"person_name": person_name, **options}
    path = f"{RECOGNITION}/add-face-upload"
    return _upload(path, AddFaceResponse, fields, {"file": image}, idempotent=True)


def register_multiple(
    images: list[ImageInput], full_name: str, employee_id: str, options: dict[str, Any]
) -> Call[RegisterMultipleResponse]:
    body = {
        "full_name": full_name,
        "employee_id": employee_id,
        "images": [image_b64(i) for i in images],
        **options,
    }
    path = f"{RECOGNITION}/register-multiple"
    return _json("POST", path, RegisterMultipleResponse, body, idempotent=True)


def enroll_batch(persons: list[BatchPerson], options: dict[str, Any]) -> Call[EnrollBatchResponse]:
    """``enroll-batch-upload``: the photos as files (no base64), the persons as JSON naming them
    by position."""
    listed: list[dict[str, Any]] = []
    files: list[tuple[str, tuple[str, bytes]]] = []
    for person in persons:
        fields = {
            "person_name": person.person_name,
            "person_id": person.person_id,
            "employee_id": person.employee_id,
            "department": person.department,
            "position": person.position,
            "metadata": person.metadata,
        }
        positions = list(range(len(files), len(files) + len(person.images)))
        files += [
            ("files", (image_name(i, f"{n}.img"), image_bytes(i)))
            for n, i in zip(positions, person.images, strict=True)
        ]
        listed.append(compact(fields) | {"files": positions})
    data, _ = multipart({"persons": listed, **options}, {})
    path = f"{RECOGNITION}/enroll-batch-upload"
    return Call("POST", path, EnrollBatchResponse, data=data, files=files, idempotent=True)


# --- recognition ------------------------------------------------------------------------------


def recognize(image: ImageInput, options: dict[str, Any]) -> Call[RecognizeResponse]:
    body = {"face_image_base64": image_b64(image), **options}
    return _json("POST", f"{RECOGNITION}/recognize", RecognizeResponse, body)


def recognize_upload(image: ImageInput, options: dict[str, Any]) -> Call[RecognizeResponse]:
    return _upload(f"{RECOGNITION}/recognize-upload", RecognizeResponse, options, {"file": image})


def recognize_all(image: ImageInput, options: dict[str, Any]) -> Call[RecognizeAllResponse]:
    body = {"face_image_base64": image_b64(image), **options}
    return _json("POST", f"{RECOGNITION}/recognize-all", RecognizeAllResponse, body)


def recognize_all_upload(image: ImageInput, options: dict[str, Any]) -> Call[RecognizeAllResponse]:
    path = f"{RECOGNITION}/recognize-all-upload"
    return _upload(path, RecognizeAllResponse, options, {"file": image})


def compare(a: ImageInput, b: ImageInput, options: dict[str, Any]) -> Call[CompareResponse]:
    body = {"face1_image_base64": image_b64(a), "face2_image_base64": image_b64(b), **options}
    return _json("POST", f"{RECOGNITION}/compare", CompareResponse, body)


def compare_upload(a: ImageInput, b: ImageInput, options: dict[str, Any]) -> Call[CompareResponse]:
    files = {"file1": a, "file2": b}
    return _upload(f"{RECOGNITION}/compare-upload", CompareResponse, options, files)


# --- persons and collections -----------------------------------------------------------------


def list_persons(params: dict[str, Any]) -> Call[PersonListResponse]:
    path = f"{RECOGNITION}/persons"
    return Call("GET", path, PersonListResponse, params=compact(params))


def get_person(person_id: str) -> Call[PersonDetailResponse]:
    return Call("GET", f"{RECOGNITION}/persons/{person_id}", PersonDetailResponse)


def patch_person(person_id: str, changes: dict[str, Any]) -> Call[PersonOut]:
    # Not compacted: an explicit None clears department/position.
    return Call("PATCH", f"{RECOGNITION}/persons/{person_id}", PersonOut, json=changes)


def delete_person(person_id: str) -> Call[DeletedResponse]:
    return Call("DELETE", f"{RECOGNITION}/persons/{person_id}", DeletedResponse)


def delete_face(person_id: str, face_id: str) -> Call[DeletedResponse]:
    path = f"{RECOGNITION}/persons/{person_id}/faces/{face_id}"
    return Call("DELETE", path, DeletedResponse)


def create_collection(name: str, description: str | None) -> Call[CollectionOut]:
    body = {"name": name, "description": description}
    return _json("POST", f"{RECOGNITION}/collections", CollectionOut, body)


def list_collections() -> Call[CollectionListResponse]:
    return Call("GET", f"{RECOGNITION}/collections", CollectionListResponse)


def delete_collection(name: str, force: bool) -> Call[DeletedResponse]:
    path = f"{RECOGNITION}/collections/{name}"
    return Call("DELETE", path, DeletedResponse, params={"force": "true" if force else "false"})


# --- photos and suggestions ------------------------------------------------------------------


def add_photo(image: ImageInput, photo_id: str, options: dict[str, Any]) -> Call[PhotoResponse]:
    body = {"photo_id": photo_id, "image_base64": image_b64(image), **options}
    return _json("POST", PHOTOS, PhotoResponse, body)


def add_photo_upload(
    image: ImageInput, photo_id: str, options: dict[str, Any]
) -> Call[PhotoResponse]:
    fields = {"photo_id": photo_id, **options}
    return _upload(f"{PHOTOS}/upload", PhotoResponse, fields, {"file": image})


def get_photo(photo_id: str) -> Call[PhotoResponse]:
    return Call("GET", f"{PHOTOS}/{photo_id}", PhotoResponse)


def delete_photo(photo_id: str) -> Call[PhotoDeletedResponse]:
    return Call("DELETE", f"{PHOTOS}/{photo_id}", PhotoDeletedResponse)


def retag_photo(photo_id: str) -> Call[PhotoResponse]:
    return Call("POST", f"{PHOTOS}/{photo_id}/retag", PhotoResponse)


def confirm_face(photo_id: str, index: int) -> Call[PhotoResponse]:
    return Call("POST", f"{PHOTOS}/{photo_id}/faces/{index}/confirm", PhotoResponse)


def assign_face(photo_id: str, index: int, person_id: str) -> Call[AssignResponse]:
    path = f"{PHOTOS}/{photo_id}/faces/{index}/assign"
    return Call("POST", path, AssignResponse, json={"person_id": person_id})


def reject_face(photo_id: str, index: int, person_id: str) -> Call[PhotoResponse]:
    path = f"{PHOTOS}/{photo_id}/faces/{index}/reject"
    return Call("POST", path, PhotoResponse, json={"person_id": person_id})


def person_photos(person_id: str, params: dict[str, Any]) -> Call[PersonPhotosResponse]:
    path = f"{RECOGNITION}/persons/{person_id}/photos"
    return Call("GET", path, PersonPhotosResponse, params=compact(params))


def list_suggestions(collection: str | None) -> Call[SuggestionListResponse]:
    params = compact({"collection": collection})
    return Call("GET", SUGGESTIONS, SuggestionListResponse, params=params)


def accept_suggestion(
    suggestion_id: str, person_name: str, options: dict[str, Any]
) -> Call[AcceptResponse]:
    body = {"person_name": person_name, **options}
    return _json("POST", f"{SUGGESTIONS}/{suggestion_id}/accept", AcceptResponse, body)


def dismiss_suggestion(suggestion_id: str) -> Call[DismissResponse]:
    return Call("POST", f"{SUGGESTIONS}/{suggestion_id}/dismiss", DismissResponse)


# --- system, admin, migrations ---------------------------------------------------------------


def models() -> Call[ModelsResponse]:
    return Call("GET", "/api/models", ModelsResponse)


def health() -> Call[Health]:
    return Call("GET", "/health", Health)


def ready() -> Call[Readiness]:
    return Call("GET", "/ready", Readiness, also_ok=frozenset({503}))


def create_key(scopes: list[str], options: dict[str, Any]) -> Call[KeyCreatedResponse]:
    return _json("POST", f"{ADMIN}/keys", KeyCreatedResponse, {"scopes": scopes, **options})


def list_keys(tenant: str | None) -> Call[KeyListResponse]:
    return Call("GET", f"{ADMIN}/keys", KeyListResponse, params=compact({"tenant": tenant}))


def revoke_key(key_id: str) -> Call[KeyRevokedResponse]:
    return Call("DELETE", f"{ADMIN}/keys/{key_id}", KeyRevokedResponse)


def audit(params: dict[str, Any]) -> Call[AuditResponse]:
    since = params.get("since")
    if isinstance(since, datetime):
        params = params | {"since": since.isoformat()}
    return Call("GET", f"{ADMIN}/audit", AuditResponse, params=compact(params))


def start_migration(collection: str, to_model: str) -> Call[MigrationResponse]:
    body = {"collection": collection, "to_model": to_model}
    return _json("POST", f"{ADMIN}/migrations", MigrationResponse, body)


def list_migrations(collection: str | None) -> Call[MigrationListResponse]:
    params = compact({"collection": collection})
    return Call("GET", f"{ADMIN}/migrations", MigrationListResponse, params=params)


def get_migration(migration_id: str) -> Call[MigrationResponse]:
    return Call("GET", f"{ADMIN}/migrations/{migration_id}", MigrationResponse)


def migration_action(
    migration_id: str, action: str, force: bool = False
) -> Call[MigrationResponse]:
    params = {"force": "true"} if force else None
    path = f"{ADMIN}/migrations/{migration_id}/{action}"
    return Call("POST", path, MigrationResponse, params=params)
