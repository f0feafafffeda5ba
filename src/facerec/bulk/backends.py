"""Where bulk enrollment sends its photos: a running service (through
:class:`~facerec.client.AsyncFaceRecClient`) or the configured database directly (the services the
app builds, without HTTP). Both answer the same small shapes, so the runner has one code path."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from facerec.bulk.folders import PersonFolder
from facerec.client import AsyncFaceRecClient, FaceRecApiError
from facerec.errors import FaceRecError, NotFoundError
from facerec.state import AppState


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


def _rejected(error: FaceRecApiError | FaceRecError) -> RejectedError:
    return RejectedError(error.code, error.message, error.details)


def _person_fields(person: PersonFolder) -> dict[str, Any]:
    return {"department": person.department, "position": person.position}


class RemoteBackend:
    def __init__(self, client: AsyncFaceRecClient) -> None:
        self.client = client

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
            )
        except FaceRecApiError as exc:
            raise _rejected(exc) from exc
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
                **_person_fields(person),
            )
        except FaceRecApiError as exc:
            raise _rejected(exc) from exc
        person_id = done.person.person_id
        results: list[Enrolled | RejectedError] = [
            Enrolled(person_id, r.face_id or "", [w.code for w in r.warnings])
            if r.accepted
            else RejectedError(r.reason or "rejected", r.message or "", r.details or {})
            for r in sorted(done.results, key=lambda r: r.index)
        ]
        return Registered(person_id, results)


class LocalBackend:
    """The enrollment service of an :class:`AppState` built by :mod:`facerec.bulk.local`, on the
    default tenant (collections and person ids as stored)."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    async def ensure_collection(self, name: str) -> None:
        assert self.state.repository is not None
        await self.state.repository.ensure_collection(name)

    async def find_person(
        self, collection: str, person: PersonFolder, person_id: str | None
    ) -> KnownPerson | None:
        repository = self.state.repository
        assert repository is not None
        try:
            if person_id is not None:
                found = await repository.get_person(person_id)
            elif person.employee_id is not None:
                found = await repository.get_person_by_employee_id(person.employee_id, collection)
            else:  # by its exact name, when only one person has it
                page = await repository.list_persons(collection=collection, name=person.name)
                named = [p for p in page.items if p.name == person.name]
                if len(named) != 1:
                    return None
                found = named[0]
        except NotFoundError:
            return None
        if found.collection != collection:
            return None
        faces = await repository.list_faces(found.id)
        return KnownPerson(
            found.id,
            frozenset(f.id for f in faces),
            frozenset(f.image_sha256 for f in faces if f.image_sha256),
        )

    def _check_size(self, image: bytes) -> None:
        limit = self.state.settings.limits.max_upload_bytes
        if len(image) > limit:
            raise RejectedError("file_too_large", f"{len(image)} bytes; at most {limit}")

    async def add_face(
        self, image: bytes, person: PersonFolder, person_id: str | None, collection: str
    ) -> Enrolled:
        from facerec.domain.probes import ProcessingMode
        from facerec.domain.timing import StageTimer

        self._check_size(image)
        try:
            done = await self.state.enrollment.add_face(
                image=image,
                person_name=person.name,
                person_id=person_id,
                model="auto",
                metadata=person.metadata or None,
                collection=collection,
                mode=ProcessingMode.BALANCED,
                check_liveness=None,
                timer=StageTimer(self.state.metrics.stage),
            )
        except FaceRecError as exc:
            raise _rejected(exc) from exc
        return Enrolled(done.person.id, done.face_id, [w.code for w in done.warnings])

    async def register_multiple(
        self, images: list[bytes], person: PersonFolder, collection: str
    ) -> Registered:
        from facerec.domain.probes import ProcessingMode
        from facerec.domain.timing import StageTimer
        from facerec.storage.models import NewPerson

        for image in images:
            self._check_size(image)
        try:
            new = NewPerson(
                name=person.name,
                collection=collection,
                employee_id=person.employee_id,
                department=person.department,
                position=person.position,
                metadata=person.metadata,
            )
            done = await self.state.enrollment.register_multiple(
                images=images,
                person=new,
                model="auto",
                mode=ProcessingMode.BALANCED,
                replace=False,
                check_liveness=None,
                timer=StageTimer(self.state.metrics.stage),
            )
        except FaceRecError as exc:
            raise _rejected(exc) from exc
        face_ids = iter(done.face_ids)
        results: list[Enrolled | RejectedError] = []
        for outcome in sorted(done.outcomes, key=lambda o: o.index):
            if outcome.analysis is not None:
                warnings = [w.code for w in outcome.warnings]
                results.append(Enrolled(done.person.id, next(face_ids), warnings))
            else:
                error = outcome.error
                results.append(
                    _rejected(error) if error else RejectedError("rejected", "no reason given")
                )
        return Registered(done.person.id, results)
