"""Every endpoint of the photo API (stored photos, their tagged faces, and the suggested new
persons), once: its method, path, body and response model.

Apart from :mod:`.calls` because photos are an API of their own (``/api/photos``,
``/api/photo-suggestions``); a person's photos, listed under the person, stay there. Both clients
turn these into requests the same way.
"""

from __future__ import annotations

from typing import Any

from facerec.api.schemas.photos import (
    AcceptResponse,
    AssignResponse,
    DismissResponse,
    PhotoDeletedResponse,
    PhotoResponse,
    SuggestionListResponse,
)
from facerec.client._core import Call, ImageInput, compact, image_b64, json_call, upload_call

PHOTOS = "/api/photos"
SUGGESTIONS = "/api/photo-suggestions"


# --- photos and suggestions ------------------------------------------------------------------


def add_photo(image: ImageInput, photo_id: str, options: dict[str, Any]) -> Call[PhotoResponse]:
    body = {"photo_id": photo_id, "image_base64": image_b64(image), **options}
    return json_call("POST", PHOTOS, PhotoResponse, body)


def add_photo_upload(
    image: ImageInput, photo_id: str, options: dict[str, Any]
) -> Call[PhotoResponse]:
    fields = {"photo_id": photo_id, **options}
    return upload_call(f"{PHOTOS}/upload", PhotoResponse, fields, {"file": image})


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


def list_suggestions(collection: str | None) -> Call[SuggestionListResponse]:
    params = compact({"collection": collection})
    return Call("GET", SUGGESTIONS, SuggestionListResponse, params=params)


def accept_suggestion(
    suggestion_id: str, person_name: str, options: dict[str, Any]
) -> Call[AcceptResponse]:
    body = {"person_name": person_name, **options}
    return json_call("POST", f"{SUGGESTIONS}/{suggestion_id}/accept", AcceptResponse, body)


def dismiss_suggestion(suggestion_id: str) -> Call[DismissResponse]:
    return Call("POST", f"{SUGGESTIONS}/{suggestion_id}/dismiss", DismissResponse)
