"""Bulk enrollment: many persons, each with several photos, in one request (``enroll-batch``).

Every photo of the batch is analysed at once (:mod:`facerec.domain.bulk_enrollment_analysis`:
both cores locate faces, one batched call embeds them); then each person is judged and written on
its own, with the rules of single enrollment:

- a new person (no ``person_id``, or one not stored yet) is registered like register-multiple:
  photos far from every other photo of the set are ``inconsistent_with_person``, the set is checked
  for ``possible_duplicate`` against the collection (persons written earlier in the same batch
  included), and the person and all its accepted faces are written in one transaction;
- an existing ``person_id`` gets its accepted photos appended like add-face, each checked for
  ``inconsistent_with_person`` against the faces it has, in one transaction;
- a photo's own fault (``no_face``, ``multiple_faces``, ``low_quality``, ``spoof_detected``,
  ``invalid_image``, ...) rejects that photo; a person with no usable photo (``no_usable_images``),
  a refused guard (``reject``), an employee id already registered (``duplicate_employee_id``) or a
  person of another collection (``person_in_other_collection``) rejects that person, nothing of it
  written. Neither fails the batch. Model and storage failures do (503), after the persons before
  them were written whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from dataclasses import replace as dataclass_replace
from enum import StrEnum
from typing import Any

from facerec.domain.bulk_enrollment_analysis import BatchAnalyzer, PhotoAnalysis, PhotoInput
from facerec.domain.enrollment import EnrollmentService
from facerec.domain.enrollment_values import (
    EnrollmentWarning,
    GuardPolicy,
    ImageOutcome,
    new_face,
    no_usable_images,
)
from facerec.domain.probes import Analysis, ProcessingMode
from facerec.domain.timing import StageTimer
from facerec.errors import (
    ConflictError,
    FaceRecError,
    InvalidInputError,
    NotFoundError,
)
from facerec.storage.models import NewPerson, check_collection_key, check_id_key
from facerec.values import Erasure, Person


class PersonStatus(StrEnum):
    CREATED = "created"  # a new person with its accepted faces
    ADDED = "added"  # faces appended to an existing person
    REJECTED = "rejected"  # nothing of this person was written


@dataclass(frozen=True)
class BulkPerson:
    """One person of a batch; ``person_id`` is the stored key (tenant applied)."""

    name: str
    images: Sequence[PhotoInput]
    person_id: str | None = None
    employee_id: str | None = None
    department: str | None = None
    position: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    # Refused before any work (e.g. a malformed person id): rejected with this, the rest goes on.
    refused: InvalidInputError | None = None


@dataclass(frozen=True)
class BulkOptions:
    collection: str
    model: str | None = "auto"
    mode: ProcessingMode = ProcessingMode.BALANCED
    check_liveness: bool | None = None
    on_duplicate: GuardPolicy = GuardPolicy.WARN
    on_inconsistent: GuardPolicy = GuardPolicy.WARN


@dataclass(frozen=True)
class PersonOutcome:
    index: int
    status: PersonStatus
    photos: list[ImageOutcome]
    person: Person | None = None
    face_ids: list[str] = field(default_factory=list)  # one per accepted photo, in order
    error: FaceRecError | None = None
    warnings: list[EnrollmentWarning] = field(default_factory=list)


@dataclass(frozen=True)
class BulkEnrollment:
    outcomes: list[PersonOutcome]
    embedder: str
    space: str


def _photo(index: int, result: PhotoAnalysis) -> ImageOutcome:
    if isinstance(result, Analysis):
        return ImageOutcome(index, analysis=result)
    return ImageOutcome(index, error=result)


class BulkEnrollmentService:
    def __init__(self, *, enrollment: EnrollmentService, analyzer: BatchAnalyzer) -> None:
        self.enrollment = enrollment
        self.analyzer = analyzer

    async def enroll(
        self, persons: Sequence[BulkPerson], options: BulkOptions, timer: StageTimer
    ) -> BulkEnrollment:
        service = self.enrollment
        queries = service.queries
        check_collection_key(options.collection)
        model = await queries.collection_embedder(options.collection, options.model)
        analysis_options = queries.subject_options(
            embedder=model,
            mode=options.mode,
            enrollment=True,
            check_liveness=options.check_liveness,
        )
        analysis_options = dataclass_replace(analysis_options, keep_chips=service.keep_chips)
        embedder = analysis_options.embedder or ""
        flat = [  # a refused person's photos are not even analysed
            image if person.refused is None else person.refused
            for person in persons
            for image in person.images
        ]
        results = await self.analyzer.analyse(flat, analysis_options, timer)
        outcomes: list[PersonOutcome] = []
        start = 0
        try:
            for index, person in enumerate(persons):
                mine = results[start : start + len(person.images)]
                start += len(person.images)
                photos = [_photo(i, r) for i, r in enumerate(mine)]
                try:
                    if person.refused is not None:
                        raise person.refused
                    outcome = await self._person(index, person, photos, options, embedder, timer)
                except (InvalidInputError, ConflictError) as exc:  # this person's fault only
                    outcome = PersonOutcome(index, PersonStatus.REJECTED, photos, error=exc)
                outcomes.append(outcome)
        finally:  # even when storage fails midway: the persons written before are purged
            written = [o.person.id for o in outcomes if o.person is not None]
            if written:
                await service.purge(Erasure(updated_person_ids=tuple(written)))
        if written:
            await service.adopt_space(options.collection, embedder)
        space = queries.analyzer.embedder_space(embedder, options.mode) if embedder else ""
        return BulkEnrollment(outcomes, embedder, space)

    async def _existing(self, person: BulkPerson, collection: str) -> Person | None:
        repository = self.enrollment.repository
        if person.person_id is not None:
            check_id_key(person.person_id, "person")
            try:
                found = await repository.get_person(person.person_id)
            except NotFoundError:
                found = None
            if found is not None:
                if found.collection != collection:
                    raise ConflictError(
                        "this person belongs to another collection; a person is in exactly one",
                        code="person_in_other_collection",
                    )
                return found
        if person.employee_id:
            try:
                other = await repository.get_person_by_employee_id(person.employee_id, collection)
            except NotFoundError:
                return None
            raise ConflictError(
                f"employee {person.employee_id!r} is already registered; send its person_id to "
                "add faces to it",
                code="duplicate_employee_id",
                employee_id=person.employee_id,
                person_id=other.id,
            )
        return None

    async def _person(
        self,
        index: int,
        person: BulkPerson,
        photos: list[ImageOutcome],
        options: BulkOptions,
        embedder: str,
        timer: StageTimer,
    ) -> PersonOutcome:
        service = self.enrollment
        # Every field checked first, as add-face does, even when the person exists already.
        new = NewPerson(
            name=person.name,
            collection=options.collection,
            id=person.person_id,
            employee_id=person.employee_id,
            department=person.department,
            position=person.position,
            metadata=dict(person.metadata),
        )
        existing = await self._existing(person, options.collection)
        if not photos:
            raise InvalidInputError("a person without photos", code="no_images")
        if existing is None:  # a new person: its photos must agree with each other
            photos = service.consistent_photos(photos, embedder, options.on_inconsistent)
        accepted = [o.analysis for o in photos if o.analysis is not None]
        if not accepted:
            raise no_usable_images(photos)
        space = await service.space_for(embedder, accepted[0].space or "")
        warnings: list[EnrollmentWarning] = []
        if existing is not None:
            with timer.stage("guards"):
                photos = await self._against_person(existing, photos, space.name, embedder, options)
            accepted = [o.analysis for o in photos if o.analysis is not None]
            if not accepted:
                raise no_usable_images(photos)
        else:
            vectors = [a.subject.vector for a in accepted]
            with timer.stage("guards"):
                found = await service.guards.duplicate(
                    options.collection, space.name, vectors, embedder
                )
            if found is not None:
                if options.on_duplicate is GuardPolicy.REJECT:
                    raise ConflictError(found.message, code=found.code, **found.details)
                warnings.append(EnrollmentWarning(found.code, found.message, dict(found.details)))
        faces = [new_face(space.name, a, a.subject.vector) for a in accepted]
        repository = service.repository
        if existing is not None:
            with timer.stage("store"):
                stored = await repository.add_faces(existing.id, faces)
                after = await repository.get_person(existing.id)
            return PersonOutcome(
                index,
                PersonStatus.ADDED,
                photos,
                person=after,
                face_ids=[f.id for f in stored],
                warnings=warnings,
            )
        with timer.stage("store"):
            registration = await repository.register_person(new, faces)
        return PersonOutcome(
            index,
            PersonStatus.CREATED,
            photos,
            person=registration.person,
            face_ids=[f.id for f in registration.faces],
            warnings=warnings,
        )

    async def _against_person(
        self,
        person: Person,
        photos: list[ImageOutcome],
        space: str,
        embedder: str,
        options: BulkOptions,
    ) -> list[ImageOutcome]:
        """Each new photo of an existing person checked against the faces it already has."""
        guards = self.enrollment.guards
        checked = []
        for photo in photos:
            if photo.analysis is None:
                checked.append(photo)
                continue
            vector = photo.analysis.subject.vector
            found = await guards.inconsistent(person.id, space, [vector], embedder)
            if found is None:
                checked.append(photo)
            elif options.on_inconsistent is GuardPolicy.REJECT:
                error = ConflictError(found.message, code=found.code, **found.details)
                checked.append(ImageOutcome(photo.index, error=error))
            else:
                warning = EnrollmentWarning(found.code, found.message, dict(found.details))
                checked.append(
                    ImageOutcome(photo.index, analysis=photo.analysis, warnings=[warning])
                )
        return checked
