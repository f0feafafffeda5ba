"""``FaceRecClient``: the HTTP API from Python, blocking (httpx).

Method names are the API's; answers are the API's own pydantic models; any error is
:class:`~facerec.client.FaceRecApiError`. 429 and 503 are retried (``retries`` times) after the
service's ``Retry-After`` (at most 30 s each); enrollment carries an automatic ``Idempotency-Key``,
so a retried enrollment never enrolls twice: the sending is :class:`~.senders.Sender`'s.

    with FaceRecClient("http://127.0.0.1:8000", api_key="fk_...") as client:
        client.add_face_upload("grace.jpg", "Grace Hopper", collection="staff")
        print(client.recognize_upload("probe.jpg", gallery="staff").best_match)
"""

from __future__ import annotations

from collections.abc import Iterator
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
from facerec.client import calls, photo_calls, service_calls
from facerec.client._core import BatchPerson, ImageInput
from facerec.client.senders import Sender


class FaceRecClient(Sender):
    """Every endpoint of the API, blocking (:class:`~facerec.client.AsyncFaceRecClient` has the
    same ones, awaited)."""

    def detect(self, image: ImageInput, **options: Any) -> DetectionResponse:
        return self._send(calls.detect(image, options))

    def detect_upload(self, image: ImageInput, **options: Any) -> DetectionResponse:
        return self._send(calls.detect_upload(image, options))

    def liveness(self, image: ImageInput, **options: Any) -> LivenessResponse:
        return self._send(calls.liveness(image, options))

    def liveness_upload(self, image: ImageInput, **options: Any) -> LivenessResponse:
        return self._send(calls.liveness_upload(image, options))

    def add_face(self, image: ImageInput, person_name: str, **options: Any) -> AddFaceResponse:
        return self._send(calls.add_face(image, person_name, options))

    def add_face_upload(
        self, image: ImageInput, person_name: str, **options: Any
    ) -> AddFaceResponse:
        return self._send(calls.add_face_upload(image, person_name, options))

    def register_multiple(
        self, images: list[ImageInput], full_name: str, employee_id: str, **options: Any
    ) -> RegisterMultipleResponse:
        return self._send(calls.register_multiple(images, full_name, employee_id, options))

    def enroll_batch(self, persons: list[BatchPerson], **options: Any) -> EnrollBatchResponse:
        """Many persons with their photos in one request (``enroll-batch-upload``); each person
        and photo has its own result. ``options``: ``collection``, ``model_name``,
        ``on_duplicate``, ``on_inconsistent``, ``processing_mode``, ``check_liveness``."""
        return self._send(calls.enroll_batch(persons, options))

    def recognize(self, image: ImageInput, **options: Any) -> RecognizeResponse:
        return self._send(calls.recognize(image, options))

    def recognize_upload(self, image: ImageInput, **options: Any) -> RecognizeResponse:
        return self._send(calls.recognize_upload(image, options))

    def recognize_all(self, image: ImageInput, **options: Any) -> RecognizeAllResponse:
        return self._send(calls.recognize_all(image, options))

    def recognize_all_upload(self, image: ImageInput, **options: Any) -> RecognizeAllResponse:
        return self._send(calls.recognize_all_upload(image, options))

    def compare(self, a: ImageInput, b: ImageInput, **options: Any) -> CompareResponse:
        return self._send(calls.compare(a, b, options))

    def compare_upload(self, a: ImageInput, b: ImageInput, **options: Any) -> CompareResponse:
        return self._send(calls.compare_upload(a, b, options))

    def list_persons(
        self,
        *,
        collection: str | None = None,
        name: str | None = None,
        employee_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> PersonListResponse:
        params = {"collection": collection, "name": name, "employee_id": employee_id}
        return self._send(calls.list_persons(params | {"limit": limit, "cursor": cursor}))

    def iter_persons(
        self,
        *,
        collection: str | None = None,
        name: str | None = None,
        employee_id: str | None = None,
        page_size: int = 200,
    ) -> Iterator[PersonOut]:
        """Every person matching the filters, page after page."""
        cursor: str | None = None
        while True:
            page = self.list_persons(
                collection=collection,
                name=name,
                employee_id=employee_id,
                limit=page_size,
                cursor=cursor,
            )
            yield from page.persons
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def get_person(self, person_id: str) -> PersonDetailResponse:
        return self._send(calls.get_person(person_id))

    def patch_person(self, person_id: str, **changes: Any) -> PersonOut:
        return self._send(calls.patch_person(person_id, changes))

    def delete_person(self, person_id: str) -> DeletedResponse:
        return self._send(calls.delete_person(person_id))

    def delete_face(self, person_id: str, face_id: str) -> DeletedResponse:
        return self._send(calls.delete_face(person_id, face_id))

    def create_collection(self, name: str, description: str | None = None) -> CollectionOut:
        return self._send(calls.create_collection(name, description))

    def list_collections(self) -> CollectionListResponse:
        return self._send(calls.list_collections())

    def delete_collection(self, name: str, *, force: bool = False) -> DeletedResponse:
        return self._send(calls.delete_collection(name, force))

    def add_photo(self, image: ImageInput, photo_id: str, **options: Any) -> PhotoResponse:
        return self._send(photo_calls.add_photo(image, photo_id, options))

    def add_photo_upload(self, image: ImageInput, photo_id: str, **options: Any) -> PhotoResponse:
        return self._send(photo_calls.add_photo_upload(image, photo_id, options))

    def get_photo(self, photo_id: str) -> PhotoResponse:
        return self._send(photo_calls.get_photo(photo_id))

    def delete_photo(self, photo_id: str) -> PhotoDeletedResponse:
        return self._send(photo_calls.delete_photo(photo_id))

    def retag_photo(self, photo_id: str) -> PhotoResponse:
        return self._send(photo_calls.retag_photo(photo_id))

    def confirm_face(self, photo_id: str, index: int) -> PhotoResponse:
        return self._send(photo_calls.confirm_face(photo_id, index))

    def assign_face(self, photo_id: str, index: int, person_id: str) -> AssignResponse:
        return self._send(photo_calls.assign_face(photo_id, index, person_id))

    def reject_face(self, photo_id: str, index: int, person_id: str) -> PhotoResponse:
        return self._send(photo_calls.reject_face(photo_id, index, person_id))

    def person_photos(
        self, person_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> PersonPhotosResponse:
        return self._send(calls.person_photos(person_id, {"limit": limit, "cursor": cursor}))

    def list_suggestions(self, collection: str | None = None) -> SuggestionListResponse:
        return self._send(photo_calls.list_suggestions(collection))

    def accept_suggestion(
        self, suggestion_id: str, person_name: str, **options: Any
    ) -> AcceptResponse:
        return self._send(photo_calls.accept_suggestion(suggestion_id, person_name, options))

    def dismiss_suggestion(self, suggestion_id: str) -> DismissResponse:
        return self._send(photo_calls.dismiss_suggestion(suggestion_id))

    def models(self) -> ModelsResponse:
        return self._send(service_calls.models())

    def health(self) -> Health:
        return self._send(service_calls.health())

    def ready(self) -> Readiness:
        return self._send(service_calls.ready())

    def create_key(self, scopes: list[str], **options: Any) -> KeyCreatedResponse:
        return self._send(service_calls.create_key(scopes, options))

    def list_keys(self, tenant: str | None = None) -> KeyListResponse:
        return self._send(service_calls.list_keys(tenant))

    def revoke_key(self, key_id: str) -> KeyRevokedResponse:
        return self._send(service_calls.revoke_key(key_id))

    def audit(
        self,
        *,
        tenant: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> AuditResponse:
        params = {"tenant": tenant, "action": action, "since": since, "cursor": cursor}
        return self._send(service_calls.audit(params | {"limit": limit}))

    def start_migration(self, collection: str, to_model: str) -> MigrationResponse:
        return self._send(service_calls.start_migration(collection, to_model))

    def list_migrations(self, collection: str | None = None) -> MigrationListResponse:
        return self._send(service_calls.list_migrations(collection))

    def get_migration(self, migration_id: str) -> MigrationResponse:
        return self._send(service_calls.get_migration(migration_id))

    def cut_over(self, migration_id: str) -> MigrationResponse:
        return self._send(service_calls.migration_action(migration_id, "cut-over"))

    def rollback(self, migration_id: str) -> MigrationResponse:
        return self._send(service_calls.migration_action(migration_id, "rollback"))

    def finish(self, migration_id: str, *, force: bool = False) -> MigrationResponse:
        return self._send(service_calls.migration_action(migration_id, "finish", force))
