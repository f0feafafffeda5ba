"""The identification service and the enrollment guards on a real SQLite gallery and the real
in-process index; only the analysis of the photo is replaced (it hands back chosen vectors)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facerec.cache.memory import MemoryCache
from facerec.config import DatabaseSettings, Settings
from facerec.domain.enrollment_guards import Guards, duplicate_threshold
from facerec.domain.gallery_cache import PersonCache
from facerec.domain.identification import IdentificationService, RecognizeOptions
from facerec.domain.persons import PersonService
from facerec.domain.probes import (
    Analysis,
    AnalysisOptions,
    FaceChoice,
    FaceProbe,
    ImageMeta,
)
from facerec.domain.timing import StageTimer
from facerec.inference.quality import QualityReport
from facerec.storage.engine import create_engine
from facerec.storage.migrate import upgrade_database
from facerec.storage.models import EmbeddingSpace, NewFace, NewPerson
from facerec.storage.registry import IndexRegistry
from facerec.storage.sql_repository import SqlGalleryRepository
from facerec.values import BBox, Detection
from tests.domain.fakes import DIM, FakeEmbedder, synthetic_calibration

SPACE = "fake@1"


def at(distance: float, axis: int = 0) -> np.ndarray:
    """A vector at ``distance`` from the origin (the probe) along ``axis``."""
    vector = np.zeros(DIM, np.float32)
    vector[axis] = distance
    return vector


class StubQueries:
    """Stands in for QueryRunner: the 'photo' is the vector to search with."""

    def __init__(self, embedder: FakeEmbedder) -> None:
        self.fake = embedder

    async def collection_embedder(self, collection: str, requested: str | None) -> str:
        return "fake"

    def subject_options(self, **_: Any) -> AnalysisOptions:
        return AnalysisOptions(detector="stub", embedder="fake", choice=FaceChoice.SUBJECT)

    def embedder(self, name: str) -> FakeEmbedder:
        return self.fake

    async def query(self, data: bytes, options: AnalysisOptions, timer: StageTimer) -> Analysis:
        vector = np.frombuffer(data, np.float32).copy()
        probe = FaceProbe(
            Detection(BBox(0, 0, 10, 10), 0.99),
            QualityReport(90.0, {}, {}),
            index=0,
            embedding=vector,
        )
        return Analysis(
            probes=[probe],
            image=ImageMeta(10, 10, 3, "PNG"),
            image_sha256="0" * 64,
            detector="stub",
            embedder="fake",
            space=SPACE,
            faces_in_image=1,
        )


@dataclass
class World:
    repo: SqlGalleryRepository
    searcher: IndexRegistry
    persons: PersonService
    embedder: FakeEmbedder
    service: IdentificationService
    guards: Guards

    async def enroll(self, name: str, *vectors: np.ndarray, quality: float = 90.0) -> str:
        person = await self.repo.create_person(NewPerson(name=name))
        faces = [NewFace(space=SPACE, embedding=v, quality=quality) for v in vectors]
        await self.repo.add_faces(person.id, faces)
        return person.id

    async def recognize(self, probe: np.ndarray, **options: Any) -> Any:
        return await self.service.recognize(
            image=probe.astype(np.float32).tobytes(),
            request=RecognizeOptions(**options),
            timer=StageTimer(),
        )


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gallery.db'}"
    engine = create_engine(DatabaseSettings(url=url))
    await upgrade_database(Settings(database_url=url), engine=engine)
    repo = SqlGalleryRepository(engine)
    await repo.ensure_space(EmbeddingSpace(SPACE, DIM, "l2"))
    searcher = IndexRegistry(repo)
    persons = PersonService(
        repository=repo, searcher=searcher, cache=PersonCache(MemoryCache(max_items=100), 60.0)
    )
    embedder = FakeEmbedder(synthetic_calibration())
    queries: Any = StubQueries(embedder)
    service = IdentificationService(
        queries=queries, repository=repo, searcher=searcher, persons=persons
    )
    guards = Guards(embedders=queries.embedder, repository=repo, searcher=searcher, persons=persons)
    yield World(repo, searcher, persons, embedder, service, guards)
    await repo.close()
    await engine.dispose()


async def test_operating_point_follows_the_gallery(world: World) -> None:
    alice = await world.enroll("alice", at(0.3))
    small = await world.recognize(at(0.0))
    assert small.best is not None and small.best.person_id == alice
    assert small.point.gallery_size == 1 and small.point.comparisons == 1
    rng = np.random.default_rng(1)
    for i in range(60):
        await world.enroll(f"p{i}", rng.normal(0, 1, DIM).astype(np.float32) * 3 + 4)
    large = await world.recognize(at(0.0))
    assert large.point.gallery_size == 61 and large.point.comparisons == 61
    assert large.point.distance_threshold < small.point.distance_threshold
    assert large.best is not None and large.best.person_id == alice
    # A stranger: nearest enrolled face beyond the threshold for this gallery → unknown.
    stranger = await world.recognize(at(large.point.distance_threshold + 0.05, axis=3) + at(0.3))
    assert stranger.best is None and stranger.decision.decided_by == "threshold"
    assert stranger.matches and not stranger.matches[0].is_match
    # A fixed similarity threshold overrides the target and says so.
    fixed = await world.recognize(at(0.0), similarity_threshold=0.5)
    assert fixed.point.rule == "similarity_threshold"
    assert fixed.point.distance_threshold == pytest.approx(world.embedder.distance_threshold)


async def test_templates_score_every_face(world: World) -> None:
    # Alice's nearest face is the closest of all, but her other two faces are far: a lucky
    # outlier. Bob's single face is a little farther than that outlier.
    alice = await world.enroll("alice", at(0.45), at(1.5, 1), at(1.5, 2))
    bob = await world.enroll("bob", at(0.55, 4))
    result = await world.recognize(at(0.0), similarity_threshold=0.1)
    ids = [m.person_id for m in result.matches]
    assert ids == [bob, alice]
    alice_match = result.matches[1]
    assert alice_match.faces == 3 and alice_match.nearest_distance == pytest.approx(0.45)
    assert alice_match.distance == pytest.approx(0.5 * (0.45 + (0.45 + 1.5 + 1.5) / 3), abs=1e-5)
    assert result.matches[0].margin == pytest.approx(
        result.matches[0].similarity - alice_match.similarity
    )


async def test_person_records_are_read_in_one_batch(world: World) -> None:
    for i in range(6):
        await world.enroll(f"p{i}", at(0.1 + 0.05 * i, i % DIM))
    calls: list[list[str]] = []
    original = world.repo.get_persons

    async def spy(ids: Any) -> Any:
        calls.append(list(ids))
        return await original(ids)

    world.repo.get_persons = spy  # type: ignore[method-assign]
    first = await world.recognize(at(0.0), top_k=5)
    assert len(first.matches) == 5 and all(m.person is not None for m in first.matches)
    assert len(calls) == 1 and len(calls[0]) == 5
    await world.recognize(at(0.0), top_k=5)  # now every record comes from the cache
    assert len(calls) == 1


async def test_guards_flag_inconsistent_faces_and_duplicates(world: World) -> None:
    alice = await world.enroll("alice", at(0.0), at(0.2, 1))
    threshold = world.embedder.distance_threshold
    near = await world.guards.inconsistent(alice, SPACE, [at(0.3, 2)], "fake")
    assert near is None
    far = await world.guards.inconsistent(alice, SPACE, [at(threshold + 0.3, 3)], "fake")
    assert far is not None and far.code == "inconsistent_with_person"
    assert far.details["faces_compared"] == 2
    assert await world.guards.inconsistent("nobody", SPACE, [at(5.0)], "fake") is None
    strict = duplicate_threshold(world.embedder)
    assert strict < threshold
    dup = await world.guards.duplicate("default", SPACE, [at(strict * 0.5, 4)], "fake")
    assert dup is not None and dup.code == "possible_duplicate"
    assert dup.details["person_id"] == alice and dup.details["person_name"] == "alice"
    assert (
        await world.guards.duplicate("default", SPACE, [at(strict * 0.5, 4)], "fake", exclude=alice)
        is None
    )
    assert await world.guards.duplicate("default", SPACE, [at(strict + 0.2, 4)], "fake") is None
    outliers = world.guards.outliers([at(0.0), at(0.1, 1), at(threshold + 1.0, 2)], "fake")
    assert list(outliers) == [2]
    assert len(world.guards.outliers([at(0.0), at(threshold + 1.0, 2)], "fake")) == 2
    assert world.guards.outliers([at(0.0)], "fake") == {}
