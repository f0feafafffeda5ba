"""The service's state on the configured database, without HTTP: what ``create_app``'s lifespan
builds (:func:`facerec.lifecycle.build_state`, :func:`facerec.lifecycle.open_storage`, model
preload), and closes the same way, for commands that work whether or not the service runs;
and the enrollment backend of ``facerec enroll`` on it (:class:`LocalBackend`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from facerec.bulk.backends import (
    BatchItem,
    BatchOutcome,
    Enrolled,
    KnownPerson,
    Registered,
    RejectedError,
    rejected,
)
from facerec.bulk.folders import PersonFolder
from facerec.config import Settings
from facerec.errors import FaceRecError, InvalidInputError, NotFoundError, PayloadTooLargeError
from facerec.state import AppState

if TYPE_CHECKING:
    from facerec.domain.bulk_enrollment import PersonOutcome


@asynccontextmanager
async def open_local(settings: Settings, *, threads: int | None = None) -> AsyncIterator[AppState]:
    """``threads``: inference threads (the executor); default: the configured ones."""
    from facerec.lifecycle import build_state, close_storage, open_storage, preload, preload_names

    if threads is not None:
        settings = settings.model_copy(deep=True)
        settings.server.executor_threads = max(1, threads)
        settings.server.max_pending_jobs = max(settings.server.max_pending_jobs, 4 * threads)
    state = build_state(settings)
    try:
        await open_storage(state)
        await asyncio.to_thread(preload, state, await preload_names(state))
        state.ready = True
        yield state
    finally:
        state.ready = False
        state.executor.shutdown()
        for manager in state.model_managers:
            manager.unload_all()
        await close_storage(state)


class LocalBackend:
    """The enrollment service of an :class:`AppState` built by :mod:`facerec.bulk.local`, on the
    default tenant (collections and person ids as stored)."""

    def __init__(self, state: AppState, *, model: str = "auto") -> None:
        self.state = state
        self.model = model  # the embedder every enrollment asks for

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
                model=self.model,
                metadata=person.metadata or None,
                collection=collection,
                mode=ProcessingMode.BALANCED,
                check_liveness=None,
                timer=StageTimer(self.state.metrics.stage),
            )
        except FaceRecError as exc:
            raise rejected(exc) from exc
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
                model=self.model,
                mode=ProcessingMode.BALANCED,
                replace=False,
                check_liveness=None,
                timer=StageTimer(self.state.metrics.stage),
            )
        except FaceRecError as exc:
            raise rejected(exc) from exc
        face_ids = iter(done.face_ids)
        results: list[Enrolled | RejectedError] = []
        for outcome in sorted(done.outcomes, key=lambda o: o.index):
            if outcome.analysis is not None:
                warnings = [w.code for w in outcome.warnings]
                results.append(Enrolled(done.person.id, next(face_ids), warnings))
            else:
                error = outcome.error
                results.append(
                    rejected(error) if error else RejectedError("rejected", "no reason given")
                )
        return Registered(done.person.id, results)

    async def enroll_batch(self, items: list[BatchItem], collection: str) -> list[BatchOutcome]:
        from facerec.domain.bulk_enrollment import BulkOptions, BulkPerson
        from facerec.domain.bulk_enrollment_batch import build_bulk_enrollment, check_counts
        from facerec.domain.timing import StageTimer

        state = self.state
        persons = [
            BulkPerson(
                name=item.person.name,
                images=[self._photo(image) for image in item.images],
                person_id=item.person_id,
                employee_id=item.person.employee_id,
                department=item.person.department,
                position=item.person.position,
                metadata=item.person.metadata,
            )
            for item in items
        ]
        service = build_bulk_enrollment(
            settings=state.settings,
            models=state.bulk_manager(self.model),
            executor=state.executor,
            enrollment=state.enrollment,
            sink=state.metrics.stage,
        )
        try:
            check_counts([len(i.images) for i in items], state.settings.limits)
            done = await service.enroll(
                persons,
                BulkOptions(collection=collection, model=self.model),
                StageTimer(state.metrics.stage),
            )
        except FaceRecError as exc:
            raise rejected(exc) from exc
        return [_local_outcome(o) for o in done.outcomes]

    def _photo(self, image: bytes) -> bytes | InvalidInputError:
        limit = self.state.settings.limits.max_upload_bytes
        if len(image) > limit:
            return PayloadTooLargeError(
                f"{len(image)} bytes; at most {limit}", code="file_too_large", limit_bytes=limit
            )
        return image


def _local_outcome(outcome: PersonOutcome) -> BatchOutcome:
    person_id = outcome.person.id if outcome.person is not None else None
    face_ids = iter(outcome.face_ids)
    results: list[Enrolled | RejectedError] = []
    for photo in sorted(outcome.photos, key=lambda o: o.index):
        if photo.analysis is not None and person_id is not None:
            warnings = [w.code for w in photo.warnings]
            results.append(Enrolled(person_id, next(face_ids), warnings))
        else:
            error = photo.error or outcome.error
            results.append(
                rejected(error) if error else RejectedError("rejected", "no reason given")
            )
    return BatchOutcome(person_id, results)
