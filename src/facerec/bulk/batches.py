"""Enrolling a folder in batches: many persons' photos per ``enroll-batch`` request.

Each person's pending photos (after the resume and duplicate checks of :mod:`.enroll`) become
items of at most :data:`PER_PERSON` photos; items are packed into batches of at most
``batch_size`` photos and :data:`BATCH_BYTES` bytes, and ``in_flight`` batches are sent at a time
(so the service's threads never wait for the network). A person with more photos than one item
holds goes on in a later round, once its person id is known. A batch refused whole for a limit
of the service (lower than ours) is split in two and sent again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from facerec.bulk.backends import Backend, BatchItem, BatchOutcome, Enrolled, RejectedError
from facerec.bulk.folders import PersonFolder, Photo

PER_PERSON = 20  # the service's default limits.max_images_per_request
BATCH_BYTES = 12 * 1024 * 1024  # below the service's default limits.max_bulk_bytes (16 MiB)
# A batch refused whole for one of these is split and sent again.
LIMIT_CODES = frozenset(
    {"too_many_images", "batch_too_large", "too_many_pixels", "payload_too_large"}
)


@dataclass
class Pending:
    """A person's photos still to send, and its id once known."""

    person: PersonFolder
    person_id: str | None
    photos: list[Photo]


# Called with each photo's outcome once its batch is answered.
Report = Callable[[PersonFolder, Photo, Enrolled | RejectedError], None]


def pack(
    items: list[tuple[Pending, list[Photo]]], size: int
) -> list[list[tuple[Pending, list[Photo]]]]:
    """Consecutive items in batches of at most ``size`` photos and :data:`BATCH_BYTES` bytes (an
    item larger than that alone is a batch)."""
    batches: list[list[tuple[Pending, list[Photo]]]] = []
    current: list[tuple[Pending, list[Photo]]] = []
    photos = weight = 0
    for item in items:
        count = len(item[1])
        nbytes = sum(_size(p) for p in item[1])
        if current and (photos + count > size or weight + nbytes > BATCH_BYTES):
            batches.append(current)
            current, photos, weight = [], 0, 0
        current.append(item)
        photos += count
        weight += nbytes
    if current:
        batches.append(current)
    return batches


def _size(photo: Photo) -> int:
    try:
        return photo.path.stat().st_size
    except OSError:
        return 0


class BatchSender:
    def __init__(
        self,
        backend: Backend,
        collection: str,
        *,
        batch_size: int,
        in_flight: int,
        report: Report,
        after_batch: Callable[[], None],
    ) -> None:
        self.backend = backend
        self.collection = collection
        self.batch_size = max(1, batch_size)
        self.slots = asyncio.Semaphore(max(1, in_flight))
        self.report = report
        self.after_batch = after_batch

    async def run(self, pending: list[Pending]) -> None:
        """Rounds until every photo was sent: each round sends the next item of every person."""
        waiting = [p for p in pending if p.photos]
        while waiting:
            items = []
            for entry in waiting:
                chunk, entry.photos = entry.photos[:PER_PERSON], entry.photos[PER_PERSON:]
                items.append((entry, chunk))
            await asyncio.gather(*(self._send(b) for b in pack(items, self.batch_size)))
            waiting = [p for p in waiting if p.photos]

    async def _send(self, batch: list[tuple[Pending, list[Photo]]]) -> None:
        async with self.slots:
            try:
                outcomes = await self.backend.enroll_batch(
                    [
                        BatchItem(
                            entry.person, entry.person_id, [p.path.read_bytes() for p in chunk]
                        )
                        for entry, chunk in batch
                    ],
                    self.collection,
                )
            except RejectedError as refused:
                if refused.code == "bulk_unsupported":
                    raise  # the caller goes back to one request per photo
                if refused.code in LIMIT_CODES and sum(len(c) for _, c in batch) > 1:
                    outcomes = None
                else:  # the whole batch refused: every photo gets the reason
                    outcomes = [
                        BatchOutcome(entry.person_id, [refused] * len(chunk))
                        for entry, chunk in batch
                    ]
        if outcomes is None:
            await self._split(batch)
            return
        for (entry, chunk), outcome in zip(batch, outcomes, strict=True):
            if outcome.person_id is not None:
                entry.person_id = outcome.person_id
            for photo, result in zip(chunk, outcome.results, strict=True):
                self.report(entry.person, photo, result)
        self.after_batch()

    async def _split(self, batch: list[tuple[Pending, list[Photo]]]) -> None:
        """Half the batch at a time (an item of one person's photos is split in the middle, its
        halves sent one after the other so that the second knows the person's id)."""
        if len(batch) > 1:
            middle = len(batch) // 2
            await asyncio.gather(self._send(batch[:middle]), self._send(batch[middle:]))
            return
        entry, chunk = batch[0]
        middle = len(chunk) // 2
        await self._send([(entry, chunk[:middle])])
        await self._send([(entry, chunk[middle:])])
