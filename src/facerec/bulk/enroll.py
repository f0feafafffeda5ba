"""Enroll a folder of persons: in parallel, resumable, every photo's outcome reported.

By default the photos go in batches of many persons (``enroll-batch``, :mod:`.batches`): a new
person is created with its photos at once (atomic, one reason per refused photo), photos of a
person already enrolled are appended. With ``batch_size=0`` (or a service without the bulk
route) one request per photo, as before: with an ``employee_id`` the first photos (up to the
per-request limit) are one ``register-multiple`` and any further ones are appended; without one,
the first photo that enrolls creates the person and the others are appended in parallel. Photos
already enrolled (the state file, checked against the person's faces on the service; offline
also the faces' image SHA-256) are skipped, so a run can be interrupted and started again.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from facerec.bulk.backends import Backend, Enrolled, KnownPerson, Registered, RejectedError
from facerec.bulk.batches import BatchSender, Pending
from facerec.bulk.folders import EnrollState, PersonFolder, Photo, scan

REGISTER_BATCH = 20  # the service's default limits.max_images_per_request
BATCH_SIZE = 32  # photos per enroll-batch request


@dataclass(frozen=True)
class PhotoResult:
    person: str  # the person's folder
    file: str
    sha256: str
    status: str  # enrolled | skipped | rejected | duplicate
    person_id: str | None = None
    face_id: str | None = None
    reason: str | None = None
    message: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class EnrollSummary:
    results: list[PhotoResult]
    seconds: float

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    def as_dict(self) -> dict[str, object]:
        return {
            "photos": len(self.results),
            "enrolled": self.count("enrolled"),
            "skipped": self.count("skipped"),
            "rejected": self.count("rejected"),
            "duplicate": self.count("duplicate"),
            "seconds": round(self.seconds, 3),
            "results": [asdict(r) for r in self.results],
        }


class _Run:
    def __init__(
        self,
        backend: Backend,
        state: EnrollState,
        collection: str,
        workers: int,
        report: Callable[[PhotoResult], None],
    ) -> None:
        self.backend = backend
        self.state = state
        self.collection = collection
        self.slots = asyncio.Semaphore(max(1, workers))
        self.report = report
        self.results: list[PhotoResult] = []
        self.save_each = True  # per-photo requests: the state file after every photo

    def done(self, result: PhotoResult) -> None:
        self.results.append(result)
        if result.status == "enrolled" and result.face_id:
            self.state.enrolled(result.sha256, result.person, result.face_id)
            if result.person_id:
                self.state.set_person(result.person, result.person_id)
            if self.save_each:  # an interrupted run loses nothing (batches: after each batch)
                self.state.save()
        self.report(result)

    def outcome(self, person: PersonFolder, photo: Photo, got: Enrolled | RejectedError) -> None:
        if isinstance(got, Enrolled):
            self.done(
                PhotoResult(
                    person.folder,
                    photo.name,
                    photo.sha256,
                    "enrolled",
                    got.person_id,
                    got.face_id,
                    warnings=got.warnings,
                )
            )
        else:
            self.done(
                PhotoResult(
                    person.folder,
                    photo.name,
                    photo.sha256,
                    "rejected",
                    reason=got.code,
                    message=got.message,
                )
            )

    async def _add(self, person: PersonFolder, photo: Photo, person_id: str | None) -> str | None:
        async with self.slots:
            try:
                got: Enrolled | RejectedError = await self.backend.add_face(
                    photo.path.read_bytes(), person, person_id, self.collection
                )
            except RejectedError as refused:
                got = refused
        self.outcome(person, photo, got)
        return got.person_id if isinstance(got, Enrolled) else None

    async def _register(self, person: PersonFolder, photos: list[Photo]) -> str | None:
        async with self.slots:
            try:
                registered = await self.backend.register_multiple(
                    [p.path.read_bytes() for p in photos], person, self.collection
                )
            except RejectedError as refused:
                per_image = refused.details.get("results")
                for i, photo in enumerate(photos):
                    item = (
                        per_image[i] if isinstance(per_image, list) and i < len(per_image) else {}
                    )
                    code = item.get("reason") or refused.code
                    self.outcome(
                        person, photo, RejectedError(code, item.get("message") or refused.message)
                    )
                return None
        return self._registered(person, photos, registered)

    def _registered(self, person: PersonFolder, photos: list[Photo], got: Registered) -> str:
        for photo, result in zip(photos, got.results, strict=False):
            self.outcome(person, photo, result)
        return got.person_id

    def _pending(self, person: PersonFolder, known: KnownPerson | None) -> list[Photo]:
        seen: dict[str, str] = {}
        pending = []
        for photo in person.photos:
            if photo.sha256 in seen:
                self.done(
                    PhotoResult(
                        person.folder,
                        photo.name,
                        photo.sha256,
                        "duplicate",
                        reason="duplicate_photo",
                        message=f"same bytes as {seen[photo.sha256]}",
                    )
                )
                continue
            seen[photo.sha256] = photo.name
            face_id = self.state.face_of(photo.sha256, person.folder)
            if known is not None and (
                (face_id is not None and face_id in known.face_ids)
                or photo.sha256 in known.image_sha256s
            ):
                self.done(
                    PhotoResult(
                        person.folder,
                        photo.name,
                        photo.sha256,
                        "skipped",
                        known.person_id,
                        face_id,
                        reason="already_enrolled",
                    )
                )
                continue
            pending.append(photo)
        return pending

    async def prepare(self, person: PersonFolder) -> Pending:
        """The person as the service knows it, and its photos still to enroll."""
        remembered = self.state.person_id(person.folder)
        async with self.slots:
            known = await self.backend.find_person(self.collection, person, remembered)
        if known is None and remembered is not None:
            self.state.forget_person(person.folder)  # erased on the service since: start over
        pending = self._pending(person, known)
        return Pending(person, known.person_id if known is not None else None, pending)

    async def person(self, person: PersonFolder) -> None:
        prepared = await self.prepare(person)
        pending, person_id = prepared.photos, prepared.person_id
        if person_id is None and person.employee_id is not None and pending:
            batch, pending = pending[:REGISTER_BATCH], pending[REGISTER_BATCH:]
            person_id = await self._register(person, batch)
        while person_id is None and pending:  # the first photo that enrolls creates the person
            person_id = await self._add(person, pending.pop(0), None)
        if person_id is not None:
            await asyncio.gather(*(self._add(person, photo, person_id) for photo in pending))


async def enroll_folder(
    root: Path,
    collection: str,
    backend: Backend,
    *,
    workers: int = 4,
    report: Callable[[PhotoResult], None] = lambda _: None,
    persons: list[PersonFolder] | None = None,
    batch_size: int = BATCH_SIZE,
) -> EnrollSummary:
    """``workers``: requests in flight (per photo), or batches in flight (at most 2: one
    analysed while the next is sent) with ``batch_size`` > 0."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    persons = scan(root) if persons is None else persons
    state = EnrollState.load(root, collection)
    await backend.ensure_collection(collection)
    run = _Run(backend, state, collection, workers, report)
    if batch_size > 0:
        try:
            await _in_batches(run, persons, batch_size, min(2, max(1, workers)))
        except RejectedError as refused:
            if refused.code != "bulk_unsupported":
                raise
            run = _Run(backend, state, collection, workers, report)  # one request per photo
            batch_size = 0
    if batch_size <= 0:
        await asyncio.gather(*(run.person(p) for p in persons))
    state.save()
    order = {(p.folder, photo.name): i for i, p in enumerate(persons) for photo in p.photos}
    results = sorted(run.results, key=lambda r: order.get((r.person, r.file), 0))
    return EnrollSummary(results, loop.time() - started)


async def _in_batches(
    run: _Run, persons: list[PersonFolder], batch_size: int, in_flight: int
) -> None:
    pending = await asyncio.gather(*(run.prepare(p) for p in persons))
    run.save_each = False
    sender = BatchSender(
        run.backend,
        run.collection,
        batch_size=batch_size,
        in_flight=in_flight,
        report=run.outcome,
        after_batch=run.state.save,
    )
    await sender.run(list(pending))


REJECTION_COLUMNS = ("person", "file", "sha256", "status", "reason", "message")


def write_rejections(path: Path, results: list[PhotoResult]) -> int:
    """The CSV of every photo not enrolled for a reason (rejected, duplicate); their count."""
    refused = [r for r in results if r.status in ("rejected", "duplicate")]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(REJECTION_COLUMNS)
        for r in refused:
            writer.writerow([r.person, r.file, r.sha256, r.status, r.reason or "", r.message or ""])
    return len(refused)
