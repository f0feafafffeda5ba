"""Enrollment: one photo (add-face) or an employee from several photos (register-multiple).

Two guards keep templates trustworthy, each answered with a warning by default or with 409 when
the request says ``reject``:

- ``inconsistent_with_person``: a new face farther from every face already enrolled for the person
  (or, in register-multiple, from every other photo sent) than the model's 1:1 threshold: probably
  someone else, and it would poison the template;
- ``possible_duplicate``: a *new* person whose face already matches another person of the
  collection at a strict false-match rate (:data:`DUPLICATE_FMR`): probably enrolled twice.

The guards are in :mod:`.enrollment_guards`; what enrollment takes and answers in
:mod:`.enrollment_values`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace as dataclass_replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facerec.domain.enrollment_guards import GuardResult, Guards
from facerec.domain.enrollment_values import (
    Enrollment,
    EnrollmentWarning,
    FaceEnrollment,
    GuardPolicy,
    ImageOutcome,
    new_face,
    no_usable_images,
)
from facerec.domain.probes import ProcessingMode
from facerec.domain.queries import QueryRunner
from facerec.domain.timing import StageTimer
from facerec.errors import ConflictError, InvalidInputError, NotFoundError
from facerec.storage.models import (
    EmbeddingSpace,
    NewPerson,
    check_collection_key,
    check_id_key,
    new_id,
)
from facerec.storage.protocols import GalleryRepository
from facerec.values import Erasure, Metric, Person


def _warning(result: GuardResult) -> EnrollmentWarning:
    return EnrollmentWarning(result.code, result.message, dict(result.details))


def _refuse(result: GuardResult) -> ConflictError:
    return ConflictError(result.message, code=result.code, **result.details)


class EnrollmentService:
    def __init__(
        self,
        *,
        queries: QueryRunner,
        repository: GalleryRepository,
        guards: Guards,
        purge: Callable[[Erasure], Awaitable[None]],
        max_images: int = 20,
        keep_chips: bool = False,
        adopt_space: Callable[[str, str, str], Awaitable[None]] | None = None,
    ) -> None:
        self.queries = queries
        self.repository = repository
        self.guards = guards
        # Drops cached copies of changed persons (callers that write persons directly, like
        # bulk enrollment, call it too).
        self.purge = purge
        self.max_images = max_images
        # Keep each face's aligned chip (a later migration re-embeds it); off: privacy mode.
        self.keep_chips = keep_chips
        # (collection, embedder, space): make it the collection's active space unless it has one.
        self._adopt_space = adopt_space

    async def adopt_space(self, collection: str, embedder: str) -> None:
        """A collection's first enrollment sets its active embedding space."""
        if self._adopt_space is None or not embedder:
            return
        if await self.queries.active_of(collection) is None:
            await self._adopt_space(collection, embedder, self.queries.embedder(embedder).space)
            self.queries.forget_active(collection)

    async def space_for(self, embedder: str, space: str) -> EmbeddingSpace:
        """The embedding space ``embedder`` writes (``space``), created on first use."""
        model = self.queries.embedder(embedder)
        metric: Metric = "cosine" if model.metric == "cosine" else "l2"
        return await self.repository.ensure_space(
            EmbeddingSpace(name=space, dim=model.dim, metric=metric)
        )

    async def add_face(
        self,
        *,
        image: bytes,
        person_name: str,
        person_id: str | None,
        model: str | None,
        metadata: Mapping[str, Any] | None,
        collection: str,
        mode: ProcessingMode,
        check_liveness: bool | None,
        timer: StageTimer,
        on_duplicate: GuardPolicy = GuardPolicy.WARN,
        on_inconsistent: GuardPolicy = GuardPolicy.WARN,
    ) -> FaceEnrollment:
        check_collection_key(collection)
        existing: Person | None = None
        if person_id is not None:
            check_id_key(person_id, "person")
            try:
                existing = await self.repository.get_person(person_id)
            except NotFoundError:
                existing = None
            if existing is not None and existing.collection != collection:
                raise ConflictError(
                    "this person belongs to another collection; a person is in exactly one",
                    code="person_in_other_collection",
                )
        model = await self.queries.collection_embedder(collection, model)
        options = self.queries.subject_options(
            embedder=model, mode=mode, enrollment=True, check_liveness=check_liveness
        )
        options = dataclass_replace(options, keep_chips=self.keep_chips)
        analysis = await self.queries.analyse(image, options, timer)
        embedder = options.embedder or ""
        space = await self.space_for(embedder, analysis.space or "")
        vector = analysis.subject.vector
        warnings: list[EnrollmentWarning] = []
        with timer.stage("guards"):
            if existing is not None:
                found = await self.guards.inconsistent(existing.id, space.name, [vector], embedder)
            else:
                found = await self.guards.duplicate(collection, space.name, [vector], embedder)
        if found is not None:
            policy = on_inconsistent if existing is not None else on_duplicate
            if policy is GuardPolicy.REJECT:
                raise _refuse(found)
            warnings.append(_warning(found))
        face = new_face(space.name, analysis, vector)
        # The person (when new) and its face are written in one transaction: no failure can
        # leave a person without faces.
        target_id = person_id or new_id()
        create = NewPerson(
            name=person_name, collection=collection, id=target_id, metadata=dict(metadata or {})
        )
        with timer.stage("store"):
            faces = await self.repository.add_faces(target_id, [face], create=create)
            person = await self.repository.get_person(faces[0].person_id)
        await self.adopt_space(collection, embedder)
        await self.purge(Erasure(updated_person_ids=(person.id,)))
        return FaceEnrollment(person, faces[0].id, analysis, warnings)

    async def register_multiple(
        self,
        *,
        images: Sequence[bytes],
        person: NewPerson,
        model: str | None,
        mode: ProcessingMode,
        replace: bool,
        check_liveness: bool | None,
        timer: StageTimer,
        on_duplicate: GuardPolicy = GuardPolicy.WARN,
        on_inconsistent: GuardPolicy = GuardPolicy.WARN,
    ) -> Enrollment:
        if not images:
            raise InvalidInputError("images is empty: send at least one photo", code="no_images")
        if len(images) > self.max_images:
            raise InvalidInputError(
                f"{len(images)} images sent; at most {self.max_images} per request",
                code="too_many_images",
                limit=self.max_images,
            )
        check_collection_key(person.collection)
        existing = await self._existing_employee(
            person.employee_id or "", person.collection, replace
        )
        model = await self.queries.collection_embedder(person.collection, model)
        options = self.queries.subject_options(
            embedder=model, mode=mode, enrollment=True, check_liveness=check_liveness
        )
        options = dataclass_replace(options, keep_chips=self.keep_chips)
        outcomes: list[ImageOutcome] = []
        for index, data in enumerate(images):
            try:
                analysis = await self.queries.analyse(data, options, timer)
                outcomes.append(ImageOutcome(index, analysis=analysis))
            except InvalidInputError as exc:  # this image's fault; model or load errors propagate
                outcomes.append(ImageOutcome(index, error=exc))
        embedder = options.embedder or ""
        outcomes = self.consistent_photos(outcomes, embedder, on_inconsistent)
        accepted = [o.analysis for o in outcomes if o.analysis is not None]
        if not accepted:
            raise no_usable_images(outcomes)
        space = await self.space_for(embedder, accepted[0].space or "")
        vectors = [a.subject.vector for a in accepted]
        warnings: list[EnrollmentWarning] = []
        with timer.stage("guards"):
            exclude = existing.id if existing is not None else None
            found = await self.guards.duplicate(
                person.collection, space.name, vectors, embedder, exclude=exclude
            )
        if found is not None:
            if on_duplicate is GuardPolicy.REJECT:
                raise _refuse(found)
            warnings.append(_warning(found))
        faces = [new_face(space.name, a, a.subject.vector) for a in accepted]
        with timer.stage("store"):
            registration = await self.repository.register_person(person, faces, replace=replace)
        await self.adopt_space(person.collection, embedder)
        await self.purge(
            Erasure(
                updated_person_ids=(registration.person.id,),
                face_ids=registration.removed.face_ids,
                image_sha256s=registration.removed.image_sha256s,
            )
        )
        return Enrollment(
            person=registration.person,
            face_ids=[f.id for f in registration.faces],
            created=registration.created,
            outcomes=outcomes,
            embedder=embedder,
            warnings=warnings,
        )

    async def _existing_employee(
        self, employee_id: str, collection: str, replace: bool
    ) -> Person | None:
        try:
            existing = await self.repository.get_person_by_employee_id(employee_id, collection)
        except NotFoundError:
            return None
        if not replace:
            raise ConflictError(
                f"employee {employee_id!r} is already registered; send replace=true to replace it",
                code="duplicate_employee_id",
                employee_id=employee_id,
                person_id=existing.id,
            )
        return existing

    def consistent_photos(
        self, outcomes: list[ImageOutcome], embedder: str, policy: GuardPolicy
    ) -> list[ImageOutcome]:
        """Flag photos far from every other photo of the set (probably someone else)."""
        accepted = [o for o in outcomes if o.analysis is not None]
        vectors: list[NDArray[np.float32]] = [
            o.analysis.subject.vector for o in accepted if o.analysis is not None
        ]
        flagged = self.guards.outliers(vectors, embedder)
        result = list(outcomes)
        for position, found in flagged.items():
            outcome = accepted[position]
            if policy is GuardPolicy.REJECT:
                replaced = ImageOutcome(outcome.index, error=_refuse(found))
            else:
                replaced = ImageOutcome(
                    outcome.index, analysis=outcome.analysis, warnings=[_warning(found)]
                )
            result[result.index(outcome)] = replaced
        return result
