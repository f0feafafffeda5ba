"""``facerec enroll`` in batches against a fake backend: packing, persons over one batch, a
service whose limits are lower than the CLI's (the batch is split and sent again), and a service
without the bulk route (one request per photo)."""

from __future__ import annotations

from pathlib import Path

import pytest

from facerec.bulk.backends import (
    BatchItem,
    BatchOutcome,
    Enrolled,
    KnownPerson,
    Registered,
    RejectedError,
)
from facerec.bulk.enroll import enroll_folder
from facerec.bulk.folders import PersonFolder


class FakeBackend:
    """Accepts every photo except those whose bytes start with ``bad``; refuses batches of more
    than ``limit`` photos with ``batch_too_large``; ``bulk=False``: no enroll-batch route."""

    def __init__(self, limit: int = 1000, bulk: bool = True) -> None:
        self.limit = limit
        self.bulk = bulk
        self.batches: list[list[tuple[str, str | None, int]]] = []
        self.singles = 0
        self.faces = 0
        self.known: dict[str, set[str]] = {}

    async def ensure_collection(self, name: str) -> None:
        return None

    async def find_person(
        self, collection: str, person: PersonFolder, person_id: str | None
    ) -> KnownPerson | None:
        if person_id is None or person_id not in self.known:
            return None
        return KnownPerson(person_id, frozenset(self.known[person_id]))

    def face(self, person_id: str) -> str:
        self.faces += 1
        self.known.setdefault(person_id, set()).add(f"f{self.faces}")
        return f"f{self.faces}"

    async def add_face(
        self, image: bytes, person: PersonFolder, person_id: str | None, collection: str
    ) -> Enrolled:
        self.singles += 1
        if image.startswith(b"bad"):
            raise RejectedError("no_face", "no face")
        person_id = person_id or f"id-{person.folder}"
        return Enrolled(person_id, self.face(person_id))

    async def register_multiple(
        self, images: list[bytes], person: PersonFolder, collection: str
    ) -> Registered:
        raise AssertionError("no employee ids here")

    async def enroll_batch(self, items: list[BatchItem], collection: str) -> list[BatchOutcome]:
        if not self.bulk:
            raise RejectedError("bulk_unsupported", "no enroll-batch")
        if sum(len(i.images) for i in items) > self.limit:
            raise RejectedError("batch_too_large", "too large")
        self.batches.append([(i.person.folder, i.person_id, len(i.images)) for i in items])
        outcomes = []
        for item in items:
            good = [not image.startswith(b"bad") for image in item.images]
            person_id = item.person_id or (f"id-{item.person.folder}" if any(good) else None)
            results: list[Enrolled | RejectedError] = []
            for ok in good:
                if ok and person_id is not None:
                    results.append(Enrolled(person_id, self.face(person_id)))
                else:
                    results.append(RejectedError("no_face", "no face"))
            outcomes.append(BatchOutcome(person_id, results))
        return outcomes


def folder(root: Path, photos: dict[str, int], bad: tuple[str, ...] = ()) -> Path:
    for name, count in photos.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            prefix = b"bad" if f"{name}/{i}" in bad else b"img"
            (root / name / f"{i:02d}.jpg").write_bytes(prefix + f"{name}-{i}".encode())
    return root


async def test_packs_persons_and_continues_large_ones(tmp_path: Path) -> None:
    root = folder(tmp_path / "people", {"a": 3, "b": 25, "c": 2}, bad=("a/0",))
    backend = FakeBackend()
    summary = await enroll_folder(root, "default", backend, batch_size=8)
    assert (summary.count("enrolled"), summary.count("rejected")) == (29, 1)
    first_round = [entry for batch in backend.batches[:-1] for entry in batch]
    assert ("b", None, 20) in first_round  # 20 photos per person per request at most
    assert backend.batches[-1] == [("b", "id-b", 5)]  # the rest, once b's id is known
    ids = {r.person_id for r in summary.results if r.person == "b"}
    assert ids == {"id-b"}
    sent = len(backend.batches)
    again = await enroll_folder(root, "default", backend, batch_size=8)  # resumed
    assert (again.count("skipped"), again.count("enrolled"), again.count("rejected")) == (29, 0, 1)
    assert backend.batches[sent:] == [[("a", "id-a", 1)]]  # only the refused photo again


async def test_a_lower_service_limit_splits_the_batch(tmp_path: Path) -> None:
    root = folder(tmp_path / "people", {"a": 4, "b": 4, "c": 6})
    backend = FakeBackend(limit=3)
    summary = await enroll_folder(root, "default", backend, batch_size=32)
    assert summary.count("enrolled") == 14
    assert all(sum(n for _, _, n in batch) <= 3 for batch in backend.batches)
    assert {r.person_id for r in summary.results if r.person == "c"} == {"id-c"}


@pytest.mark.parametrize("batch_size", [0, 32])
async def test_one_request_per_photo_without_the_bulk_route(
    tmp_path: Path, batch_size: int
) -> None:
    root = folder(tmp_path / "people", {"a": 2, "b": 3}, bad=("b/0",))
    backend = FakeBackend(bulk=False)
    summary = await enroll_folder(root, "default", backend, batch_size=batch_size)
    assert (summary.count("enrolled"), summary.count("rejected")) == (4, 1)
    assert backend.singles == 5 and backend.batches == []
