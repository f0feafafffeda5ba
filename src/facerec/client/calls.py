"""Every endpoint of the face detection, anti-spoofing and recognition APIs, once: its method,
path, body and response model.

Both clients turn these into requests; ``options`` are the endpoint's other request fields
(``top_k``, ``target_fpir``, ``processing_mode``, ...) with the API's names, left to the service's
defaults when not given. The photo endpoints are in :mod:`.photo_calls`, the service's own
(models, health, keys, audit, migrations) in :mod:`.service_calls`.
"""

from __future__ import annotations

from typing import Any

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
from facerec.api.schemas.photos import PersonPhotosResponse
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
    json_call,
    multipart,
    upload_call,
)

DETECTION = "/api/face-detection"
RECOGNITION = "/api/face-recognition"
LIVENESS = "/api/face-antispoofing"


# --- detection, liveness -------------------------------------------------------------------


def detect(image: ImageInput, options: dict[str, Any]) -> Call[DetectionResponse]:
    body = {"image_base64": image_b64(image), **options}
    return json_call("POST", f"{DETECTION}/detect", DetectionResponse, body)


def detect_upload(image: ImageInput, options: dict[str, Any]) -> Call[DetectionResponse]:
    return upload_call(f"{DETECTION}/detect-upload", DetectionResponse, options, {"file": image})


def liveness(image: ImageInput, options: dict[str, Any]) -> Call[LivenessResponse]:
    body = {"image_base64": image_b64(image), **options}
    return json_call("POST", f"{LIVENESS}/detect", LivenessResponse, body)


def liveness_upload(image: ImageInput, options: dict[str, Any]) -> Call[LivenessResponse]:
    return upload_call(f"{LIVENESS}/detect-upload", LivenessResponse, options, {"file": image})


# --- enrollment ------------------------------------------------------------------------------


def add_face(image: ImageInput, person_name: str, options: dict[str, Any]) -> Call[AddFaceResponse]:
    body = {"person_name": person_name, "face_image_base64": image_b64(image), **options}
    return json_call("POST", f"{RECOGNITION}/add-face", AddFaceResponse, body, idempotent=True)


def add_face_upload(
    image: ImageInput, person_name: str, options: dict[str, Any]
) -> Call[AddFaceResponse]:
    fields = {"person_name": person_name, **options}
    path = f"{RECOGNITION}/add-face-upload"
    return upload_call(path, AddFaceResponse, fields, {"file": image}, idempotent=True)


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
    return json_call("POST", path, RegisterMultipleResponse, body, idempotent=True)


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
    return json_call("POST", f"{RECOGNITION}/recognize", RecognizeResponse, body)


def recognize_upload(image: ImageInput, options: dict[str, Any]) -> Call[RecognizeResponse]:
    path = f"{RECOGNITION}/recognize-upload"
    return upload_call(path, RecognizeResponse, options, {"file": image})


def recognize_all(image: ImageInput, options: dict[str, Any]) -> Call[RecognizeAllResponse]:
    body = {"face_image_base64": image_b64(image), **options}
    return json_call("POST", f"{RECOGNITION}/recognize-all", RecognizeAllResponse, body)


def recognize_all_upload(image: ImageInput, options: dict[str, Any]) -> Call[RecognizeAllResponse]:
    path = f"{RECOGNITION}/recognize-all-upload"
    return upload_call(path, RecognizeAllResponse, options, {"file": image})


def compare(a: ImageInput, b: ImageInput, options: dict[str, Any]) -> Call[CompareResponse]:
    body = {"face1_image_base64": image_b64(a), "face2_image_base64": image_b64(b), **options}
    return json_call("POST", f"{RECOGNITION}/compare", CompareResponse, body)


def compare_upload(a: ImageInput, b: ImageInput, options: dict[str, Any]) -> Call[CompareResponse]:
    files = {"file1": a, "file2": b}
    return upload_call(f"{RECOGNITION}/compare-upload", CompareResponse, options, files)


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
    return json_call("POST", f"{RECOGNITION}/collections", CollectionOut, body)


def list_collections() -> Call[CollectionListResponse]:
    return Call("GET", f"{RECOGNITION}/collections", CollectionListResponse)


def delete_collection(name: str, force: bool) -> Call[DeletedResponse]:
    path = f"{RECOGNITION}/collections/{name}"
    return Call("DELETE", path, DeletedResponse, params={"force": "true" if force else "false"})


def person_photos(person_id: str, params: dict[str, Any]) -> Call[PersonPhotosResponse]:
    path = f"{RECOGNITION}/persons/{person_id}/photos"
    return Call("GET", path, PersonPhotosResponse, params=compact(params))
