"""Where bulk enrollment sends its photos: a running service (through
:class:`~facerec.client.AsyncFaceRecClient`) or the configured database directly (the services the
app builds, without HTTP). Both answer the same small shapes, so the runner has one code path."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from facerec.bulk.folders import PersonFolder
from facerec.client import AsyncFaceRecClient, BatchPerson, FaceRecApiError
from facerec.errors import FaceRecError


class RejectedError(Exception):
    """The service refused a photo (or a whole registration); ``code`` is the API's reason."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details or {}


@dataclass(frozen=True)
class Enrolled:
    person_id: str
    face_id: str
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Registered:
    person_id: str
    # per photo, in the order sent: an Enrolled, or the RejectedError that refused it
    results: list[Enrolled | RejectedError]


@dataclass(frozen=True)
class KnownPerson:
    person_id: str
    face_ids: frozenset[str]
    # SHA-256 of the photos its faces came from, where the backend can see them (offline only)
    image_sha256s: frozenset[str] = frozenset()


@dataclass(frozen=True)
class BatchItem:
    """One person's photos in a batch: a new person, or photos for ``person_id``."""

    person: PersonFolder
    person_id: str | None
    images: list[bytes]


@dataclass(frozen=True)
class BatchOutcome:
    """The person's id (None: nothing of it was written) and one result per photo, in order."""

    person_id: str | None
    results: list[Enrolled | RejectedError]


class Backend(Protocol):
    async def ensure_collection(self, name: str) -> None: ...

    async def find_person(
        self, collection: str, person: PersonFolder, person_id: str | None
    ) -> KnownPerson | None: ...

    async def add_face(
        self, image: bytes, person: PersonFolder, person_id: str | None, collection: str
    ) -> Enrolled: ...

    async def register_multiple(
        self, images: list[bytes], person: PersonFolder, collection: str
    ) -> Registered: ...

    async def enroll_batch(self, items: list[BatchItem], collection: str) -> list[BatchOutcome]:
        """Raises :class:`RejectedError` when the whole batch is refused (a limit, or a service
        without the bulk route: ``bulk_unsupported``)."""
        ...


def rejected(error: FaceRecApiError | FaceRecError) -> RejectedError:
    return RejectedError(error.code, error.message, error.details)


def _person_fields(person: PersonFolder) -> dict[str, Any]:
    return {"department": person.department, "position": person.position}


class RemoteBackend:
    def __init__(self, client: AsyncFaceRecClient, *, model: str = "auto") -> None:
        self.client = client
        self.model = model  # the embedder (``model_name``) every enrollment asks for

    async def ensure_collection(self, name: str) -> None:
        known = {c.name for c in (await self.client.list_collections()).collections}
        if name not in known:
            try:
                await self.client.create_collection(name)
            except FaceRecApiError as exc:
                if exc.status != 409:  # created meanwhile by another run
                    raise

    async def find_person(
        self, collection: str, person: PersonFolder, person_id: str | None
    ) -> KnownPerson | None:
        if person_id is None and person.employee_id is not None:
            page = await self.client.list_persons(
                collection=collection, employee_id=person.employee_id
            )
            person_id = page.persons[0].person_id if page.persons else None
        if person_id is None:  # by its exact name, when only one person has it
            page = await self.client.list_persons(collection=collection, name=person.name)
            named = [p.person_id for p in page.persons if p.person_name == person.name]
            person_id = named[0] if len(named) == 1 else None
        if person_id is None:
            return None
        try:
            detail = await self.client.get_person(person_id)
        except FaceRecApiError as exc:
            if exc.status == 404:
                return None
            raise
        if detail.person.collection != collection:
            return None
        return KnownPerson(person_id, frozenset(f.face_id for f in detail.faces))

    async def add_face(
        self, image: bytes, person: PersonFolder, person_id: str | None, collection: str
    ) -> Enrolled:
        try:
            done = await self.client.add_face_upload(
                image,
                person.name,
                person_id=person_id,
                collection=collection,
                metadata=person.metadata or None,
                model_name=self.model,
            )
        except FaceRecApiError as exc:
            raise rejected(exc) from exc
        return Enrolled(done.person_id, done.face_id, [w.code for w in done.warnings])

    async def register_multiple(
        self, images: list[bytes], person: PersonFolder, collection: str
    ) -> Registered:
        assert person.employee_id is not None
        try:
            done = await self.client.register_multiple(
                list(images),
                person.name,
                person.employee_id,
                collection=collection,
                metadata=person.metadata or None,
                model_name=self.model,
                **_person_fields(person),
            )
        except FaceRecApiError as exc:
            raise rejected(exc) from exc
        person_id = done.person.person_id
        results: list[Enrolled | RejectedError] = [
            Enrolled(person_id, r.face_id or "", [w.code for w in r.warnings])
            if r.accepted
            else RejectedError(r.reason or "rejected", r.message or "", r.details or {})
            for r in sorted(done.results, key=lambda r: r.index)
        ]
        return Registered(person_id, results)

    async def enroll_batch(self, items: list[BatchItem], collection: str) -> list[BatchOutcome]:
        persons = [
            BatchPerson(
                person_name=item.person.name,
                images=list(item.images),
                person_id=item.person_id,
                employee_id=item.person.employee_id,
                metadata=item.person.metadata or None,
                **_person_fields(item.person),
            )
            for item in items
        ]
        try:
            done = await self.client.enroll_batch(
                persons, collection=collection, model_name=self.model
            )
        except FaceRecApiError as exc:
            if exc.status in (404, 405) and exc.code in ("not_found", "method_not_allowed"):
                raise RejectedError("bulk_unsupported", "the service has no enroll-batch") from exc
            raise rejected(exc) from exc
        outcomes = []
        for result in sorted(done.results, key=lambda r: r.index):
            person_id = result.person.person_id if result.person is not None else None
            outcomes.append(
                BatchOutcome(
                    person_id,
                    [
                        Enrolled(person_id or "", r.face_id or "", [w.code for w in r.warnings])
                        if r.accepted
                        else RejectedError(
                            r.reason or result.reason or "rejected",
                            r.message or result.message or "",
                            r.details or {},
                        )
                        for r in sorted(result.results, key=lambda r: r.index)
                    ],
                )
            )
        return outcomes
