"""Another process's changes reach this process's caches through the change log, whatever the
index backend: person records and templates of the persons named, and, when anything was
erased, every recent query result (the log does not name the erased faces' images)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from facerec.cache.base import image_result_key, image_tag
from facerec.cache.memory import MemoryCache
from facerec.domain.gallery_cache import PersonCache
from facerec.domain.persons import PersonService
from facerec.storage.change_feed import ChangeFeed, ChangeNotifier
from facerec.storage.pgvector_search import PgVectorSearcher
from facerec.storage.protocols import Change, FaceSearcher, LogState
from facerec.storage.registry import IndexOptions, IndexRegistry
from facerec.storage.sql_repository import SqlGalleryRepository
from tests.storage.helpers import L2_SPACE, Backend
from tests.storage.test_registry import enroll, near

Call = tuple[set[str] | None, bool]


class Log:
    """A change log in memory (what ``ChangeFeed`` reads of a repository)."""

    def __init__(self) -> None:
        self.rows: list[Change] = []
        self.pruned = 0

    def add(self, op: str, person: str | None, face: str | None = None) -> None:
        seq = (self.rows[-1].seq if self.rows else 0) + 1
        self.rows.append(Change(seq, op, person, face, "default", L2_SPACE.name))  # type: ignore[arg-type]

    async def log_state(self) -> LogState:
        return LogState(self.rows[-1].seq if self.rows else 0, self.pruned)

    async def changes_since(self, seq: int, limit: int) -> list[Change]:
        return [c for c in self.rows if c.seq > seq][:limit]


def recorder() -> tuple[list[Call], ChangeNotifier]:
    calls: list[Call] = []

    async def record(persons: set[str] | None, erased: bool) -> None:
        calls.append((persons, erased))

    return calls, ChangeNotifier(record)


async def test_the_feed_reports_persons_and_erasures_from_where_it_started() -> None:
    log = Log()
    log.add("face_add", "old", "f0")
    calls, notifier = recorder()
    feed = ChangeFeed(log, notifier)
    assert await feed.follow() == 0 and calls == []  # the first call records the position
    log.add("person_upsert", "a")
    log.add("face_add", "a", "f1")
    assert await feed.follow() == 2
    assert calls == [({"a"}, False)]
    assert await feed.follow() == 0 and len(calls) == 1  # nothing new: nothing reported
    log.add("face_add", "b", "f2")
    log.add("face_remove", "a", "f1")
    assert await feed.follow() == 2
    assert calls[-1] == ({"a", "b"}, True)
    log.add("collection_remove", None)
    await feed.follow()
    assert calls[-1] == (set(), True)  # an erasure naming no person is still reported


async def test_skipped_changes_purge_everything() -> None:
    log = Log()
    log.add("face_add", "a", "f1")
    calls, notifier = recorder()
    feed = ChangeFeed(log, notifier)
    await feed.follow()
    for n in range(3):
        log.add("face_add", "a", f"g{n}")
    log.pruned = log.rows[-1].seq  # the rows after our position may be gone
    await feed.follow()
    assert calls == [(None, True)]
    log.rows = log.rows[:1]  # another database under the same name: the log went back
    log.pruned = 0
    await feed.follow()
    assert calls[-1] == (None, True)


async def test_a_failing_purge_never_breaks_the_feed() -> None:
    async def broken(persons: set[str] | None, erased: bool) -> None:
        raise RuntimeError("cache down")

    log = Log()
    feed = ChangeFeed(log, ChangeNotifier(broken))
    await feed.follow()
    log.add("face_remove", "a", "f1")
    assert await feed.follow() == 1


async def _remember_query(cache: PersonCache, sha: str) -> str:
    key = image_result_key(sha, "retinaface", "dlib_resnet")
    await cache.queries.set(key, b"{}", ttl=60.0, tags=[image_tag(sha)])
    return key


def _searchers(
    backend: Backend, repo: SqlGalleryRepository, cache: PersonCache
) -> Sequence[FaceSearcher]:
    found: list[FaceSearcher] = [
        IndexRegistry(repo, IndexOptions(backend="memory"), on_persons_changed=cache.purge_persons)
    ]
    if backend.kind == "pgvector":
        found.append(
            PgVectorSearcher(repo.engine, source=repo, on_persons_changed=cache.purge_persons)
        )
    return found


async def test_another_replicas_erasure_reaches_this_replicas_caches(backend: Backend) -> None:
    """Replica B holds alice's template and a recent query result; replica A enrolls bob (B
    keeps its query results) and then erases one of alice's faces: B's next search purges her
    template and every recent result before it scores anyone, with every index backend."""
    repo_a = backend.repo
    engine_b = backend.new_engine()
    repo_b = SqlGalleryRepository(engine_b)
    try:
        for number, kind in enumerate(("memory", "pgvector")):
            cache_b = PersonCache(MemoryCache(), 60.0)
            searchers = _searchers(backend, repo_b, cache_b)
            if number >= len(searchers):
                break
            searcher_b = searchers[number]
            assert searcher_b.applies_change_log, kind
            persons_b = PersonService(repository=repo_b, searcher=searcher_b, cache=cache_b)
            await searcher_b.sync()
            alice = await enroll(repo_a, f"alice-{kind}", 50 + 10 * number, 51 + 10 * number)
            hits = await searcher_b.search("default", L2_SPACE.name, near(50 + 10 * number))
            assert hits[0].person_id == alice
            await persons_b.templates([alice], L2_SPACE.name, 8)
            assert len(cache_b.templates.store) == 1
            remembered = await _remember_query(cache_b, f"{number:064x}")

            await enroll(repo_a, f"bob-{kind}", 52 + 10 * number)  # no erasure
            await searcher_b.search("default", L2_SPACE.name, near(50 + 10 * number))
            assert await cache_b.queries.get(remembered) is not None
            assert len(cache_b.templates.store) == 1  # alice did not change

            faces = await repo_a.faces_of([alice], L2_SPACE.name)
            await repo_a.delete_face(faces[-1].id)
            await searcher_b.search("default", L2_SPACE.name, near(50 + 10 * number))
            assert await cache_b.queries.get(remembered) is None
            assert len(cache_b.templates.store) == 0
            held = await persons_b.templates([alice], L2_SPACE.name, 8)
            assert len(held[alice].qualities) == 1
            await searcher_b.close()
    finally:
        await repo_b.close()
        await engine_b.dispose()


@pytest.mark.parametrize(
    "backend", [pytest.param("pgvector", marks=pytest.mark.pgvector)], indirect=True
)
async def test_pgvector_follows_the_log_only_when_given_one(backend: Backend) -> None:
    bare = PgVectorSearcher(backend.engine)
    assert bare.applies_change_log is False and await bare.sync() == 0
    calls: list[Call] = []

    async def record(persons: set[str] | None, erased: bool) -> None:
        calls.append((persons, erased))

    following = PgVectorSearcher(backend.engine, source=backend.repo, on_persons_changed=record)
    await following.sync()
    person = await enroll(backend.repo, "carol", 70)
    assert await following.sync() > 0 and calls[-1] == ({person}, False)
    await backend.repo.delete_person(person)
    queries = [near(70), near(71)]
    assert await following.search_many("default", L2_SPACE.name, queries) == [[], []]
    assert calls[-1] == ({person}, True)
