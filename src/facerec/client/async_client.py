"""``AsyncFaceRecClient``: the HTTP API from Python, for asyncio (httpx).

Method names are the API's; answers are the API's own pydantic models; any error is
:class:`~facerec.client.FaceRecApiError`. 429 and 503 are retried (``retries`` times) after the
service's ``Retry-After`` (at most 30 s each); enrollment carries an automatic ``Idempotency-Key``,
so a retried enrollment never enrolls twice: the sending is :class:`~.senders.AsyncSender`'s.

    async with AsyncFaceRecClient("http://127.0.0.1:8000", api_key="fk_...") as client:
        await client.add_face_upload("grace.jpg", "Grace Hopper", collection="staff")
        print((await client.recognize_upload("probe.jpg", gallery="staff")).best_match)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
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
from facerec.client.senders import AsyncSender


class AsyncFaceRecClient(AsyncSender):
    """Every endpoint of the API, for asyncio: the same as
    :class:`~facerec.client.FaceRecClient`'s, awaited."""

    async def detect(self, image: ImageInput, **options: Any) -> DetectionResponse:
        return await self._send(calls.detect(image, options))

    async def detect_upload(self, image: ImageInput, **options: Any) -> DetectionResponse:
        return await self._send(calls.detect_upload(image, options))

    async def liveness(self, image: ImageInput, **options: Any) -> LivenessResponse:
        return await self._send(calls.liveness(image, options))

    async def liveness_upload(self, image: ImageInput, **options: Any) -> LivenessResponse:
        return await self._send(calls.liveness_upload(image, options))

    async def add_face(
        self, image: ImageInput, person_name: str, **options: Any
    ) -> AddFaceResponse:
        return await self._send(calls.add_face(image, person_name, options))

    async def add_face_upload(
        self, image: ImageInput, person_name: str, **options: Any
    ) -> AddFaceResponse:
        return await self._send(calls.add_face_upload(image, person_name, options))

    async def register_multiple(
        self, images: list[ImageInput], full_name: str, employee_id: str, **options: Any
    ) -> RegisterMultipleResponse:
        return await self._send(calls.register_multiple(images, full_name, employee_id, options))

    async def enroll_batch(self, persons: list[BatchPerson], **options: Any) -> EnrollBatchResponse:
        """Many persons with their photos in one request (``enroll-batch-upload``); each person
        and photo has its own result. ``options``: ``collection``, ``model_name``,
        ``on_duplicate``, ``on_inconsistent``, ``processing_mode``, ``check_liveness``."""
        return await self._send(calls.enroll_batch(persons, options))

    async def recognize(self, image: ImageInput, **options: Any) -> RecognizeResponse:
        return await self._send(calls.recognize(image, options))

    async def recognize_upload(self, image: ImageInput, **options: Any) -> RecognizeResponse:
        return await self._send(calls.recognize_upload(image, options))

    async def recognize_all(self, image: ImageInput, **options: Any) -> RecognizeAllResponse:
        return await self._send(calls.recognize_all(image, options))

    async def recognize_all_upload(self, image: ImageInput, **options: Any) -> RecognizeAllResponse:
        return await self._send(calls.recognize_all_upload(image, options))

    async def compare(self, a: ImageInput, b: ImageInput, **options: Any) -> CompareResponse:
        return await self._send(calls.compare(a, b, options))

    async def compare_upload(self, a: ImageInput, b: ImageInput, **options: Any) -> CompareResponse:
        return await self._send(calls.compare_upload(a, b, options))

    async def list_persons(
        self,
        *,
        collection: str | None = None,
        name: str | None = None,
        employee_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> PersonListResponse:
        params = {"collection": collection, "name": name, "employee_id": employee_id}
        return await self._send(calls.list_persons(params | {"limit": limit, "cursor": cursor}))

    async def iter_persons(
        self,
        *,
        collection: str | None = None,
        name: str | None = None,
        employee_id: str | None = None,
        page_size: int = 200,
    ) -> AsyncIterator[PersonOut]:
        """Every person matching the filters, page after page."""
        cursor: str | None = None
        while True:
            page = await self.list_persons(
                collection=collection,
                name=name,
                employee_id=employee_id,
                limit=page_size,
                cursor=cursor,
            )
            for person in page.persons:
                yield person
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def get_person(self, person_id: str) -> PersonDetailResponse:
        return await self._send(calls.get_person(person_id))

    async def patch_person(self, person_id: str, **changes: Any) -> PersonOut:
        return await self._send(calls.patch_person(person_id, changes))

    async def delete_person(self, person_id: str) -> DeletedResponse:
        return await self._send(calls.delete_person(person_id))

    async def delete_face(self, person_id: str, face_id: str) -> DeletedResponse:
        return await self._send(calls.delete_face(person_id, face_id))

    async def create_collection(self, name: str, description: str | None = None) -> CollectionOut:
        return await self._send(calls.create_collection(name, description))

    async def list_collections(self) -> CollectionListResponse:
        return await self._send(calls.list_collections())

    async def delete_collection(self, name: str, *, force: bool = False) -> DeletedResponse:
        return await self._send(calls.delete_collection(name, force))

    async def add_photo(self, image: ImageInput, photo_id: str, **options: Any) -> PhotoResponse:
        return await self._send(photo_calls.add_photo(image, photo_id, options))

    async def add_photo_upload(
        self, image: ImageInput, photo_id: str, **options: Any
    ) -> PhotoResponse:
        return await self._send(photo_calls.add_photo_upload(image, photo_id, options))

    async def get_photo(self, photo_id: str) -> PhotoResponse:
        return await self._send(photo_calls.get_photo(photo_id))

    async def delete_photo(self, photo_id: str) -> PhotoDeletedResponse:
        return await self._send(photo_calls.delete_photo(photo_id))

    async def retag_photo(self, photo_id: str) -> PhotoResponse:
        return await self._send(photo_calls.retag_photo(photo_id))

    async def confirm_face(self, photo_id: str, index: int) -> PhotoResponse:
        return await self._send(photo_calls.confirm_face(photo_id, index))

    async def assign_face(self, photo_id: str, index: int, person_id: str) -> AssignResponse:
        return await self._send(photo_calls.assign_face(photo_id, index, person_id))

    async def reject_face(self, photo_id: str, index: int, person_id: str) -> PhotoResponse:
        return await self._send(photo_calls.reject_face(photo_id, index, person_id))

    async def person_photos(
        self, person_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> PersonPhotosResponse:
        return await self._send(calls.person_photos(person_id, {"limit": limit, "cursor": cursor}))

    async def list_suggestions(self, collection: str | None = None) -> SuggestionListResponse:
        return await self._send(photo_calls.list_suggestions(collection))

    async def accept_suggestion(
        self, suggestion_id: str, person_name: str, **options: Any
    ) -> AcceptResponse:
        return await self._send(photo_calls.accept_suggestion(suggestion_id, person_name, options))

    async def dismiss_suggestion(self, suggestion_id: str) -> DismissResponse:
        return await self._send(photo_calls.dismiss_suggestion(suggestion_id))

    async def models(self) -> ModelsResponse:
        return await self._send(service_calls.models())

    async def health(self) -> Health:
        return await self._send(service_calls.health())

    async def ready(self) -> Readiness:
        return await self._send(service_calls.ready())

    async def create_key(self, scopes: list[str], **options: Any) -> KeyCreatedResponse:
        return await self._send(service_calls.create_key(scopes, options))

    async def list_keys(self, tenant: str | None = None) -> KeyListResponse:
        return await self._send(service_calls.list_keys(tenant))

    async def revoke_key(self, key_id: str) -> KeyRevokedResponse:
        return await self._send(service_calls.revoke_key(key_id))

    async def audit(
        self,
        *,
        tenant: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> AuditResponse:
        params = {"tenant": tenant, "action": action, "since": since, "cursor": cursor}
        return await self._send(service_calls.audit(params | {"limit": limit}))

    async def start_migration(self, collection: str, to_model: str) -> MigrationResponse:
        return await self._send(service_calls.start_migration(collection, to_model))

    async def list_migrations(self, collection: str | None = None) -> MigrationListResponse:
        return await self._send(service_calls.list_migrations(collection))

    async def get_migration(self, migration_id: str) -> MigrationResponse:
        return await self._send(service_calls.get_migration(migration_id))

    async def cut_over(self, migration_id: str) -> MigrationResponse:
        return await self._send(service_calls.migration_action(migration_id, "cut-over"))

    async def rollback(self, migration_id: str) -> MigrationResponse:
        return await self._send(service_calls.migration_action(migration_id, "rollback"))

    async def finish(self, migration_id: str, *, force: bool = False) -> MigrationResponse:
        return await self._send(service_calls.migration_action(migration_id, "finish", force))
