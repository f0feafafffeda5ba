"""The ``milvus`` index backend against milvus-lite (a file per test) and against a real Milvus
2.3.5 standalone server (one per module, tests/storage/milvus_server.py; each test its own
collection prefix): search against exact search, erasure, restart and replicas following the
change log, isolation."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facerec.config import DatabaseSettings, Settings
from facerec.errors import StorageUnavailableError
from facerec.storage.engine import create_engine
from facerec.storage.factory import create_searcher
from facerec.storage.index_options import IndexOptions, MilvusOptions
from facerec.storage.migrate import upgrade_database
from facerec.storage.milvus import MilvusSearcher, sql_gallery_sizes
from facerec.storage.milvus_client import MilvusGateway, collection_name, milvus_distance
from facerec.storage.models import NewFace, NewPerson
from facerec.storage.protocols import GallerySize
from facerec.storage.sql_repository import SqlGalleryRepository
from tests.conftest import unavailable
from tests.storage.helpers import COS_SPACE, L2_SPACE, vec
from tests.storage.milvus_server import start_milvus_server


@pytest.fixture(scope="module", autouse=True)
def milvus_lite() -> None:
    if find_spec("milvus_lite") is None or find_spec("pymilvus") is None:
        unavailable("milvus-lite and pymilvus", "pip install -e '.[test]' (or '.[milvus]')")


@pytest.fixture
async def repo(tmp_path: Path) -> AsyncIterator[SqlGalleryRepository]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'db' / 'gallery.db'}"
    engine = create_engine(DatabaseSettings(url=url))
    await upgrade_database(Settings(database_url=url), engine=engine)
    repository = SqlGalleryRepository(engine)
    await repository.ensure_space(L2_SPACE)
    await repository.ensure_space(COS_SPACE)
    try:
        yield repository
    finally:
        await repository.close()
        await engine.dispose()


# Tests of our own logic (or of milvus-lite's files) that a server would only make slower: each
# Milvus collection a server creates takes ~2 s to load, and each flush ~2 s.
LITE_ONLY = pytest.mark.parametrize("milvus_uri", ["lite"], indirect=True)


# A Milvus server or cluster of your own (e.g. 2.4+ on Kubernetes) instead of the 2.3.5 server
# the tests start: its URI and token. Each test works under a prefix of its own and drops what it
# created.
EXTERNAL_URI = os.environ.get("FACEREC_TEST_MILVUS_URI")
EXTERNAL_TOKEN = os.environ.get("FACEREC_TEST_MILVUS_TOKEN")
RUN_ID = uuid.uuid4().hex  # collection prefixes differ between runs against one server


@pytest.fixture(scope="module", params=["lite", "server"])
def milvus_uri(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str | None]:
    """None for milvus-lite; else the URI of a Milvus server: ``FACEREC_TEST_MILVUS_URI``, or
    one started for this module."""
    if request.param == "lite":
        yield None
        return
    if EXTERNAL_URI:
        yield EXTERNAL_URI
        return
    if find_spec("milvus") is None:
        unavailable("the Milvus 2.3.5 server (PyPI milvus)", "pip install -e '.[test]'")
    try:
        server = start_milvus_server(tmp_path_factory.mktemp("milvus-server"))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield server.uri
    server.stop()


@pytest.fixture
def target(
    milvus_uri: str | None, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[MilvusOptions]:
    """Where this test's searchers keep their vectors (every searcher of a test: the same). On a
    server, the Milvus collections of the test's prefix are dropped afterwards."""
    if milvus_uri is None:
        yield MilvusOptions(uri=str(tmp_path / "milvus" / "faces.db"))
        return
    digest = hashlib.sha1(f"{RUN_ID} {request.node.nodeid}".encode()).hexdigest()[:16]
    prefix = "t" + digest
    token = EXTERNAL_TOKEN if milvus_uri == EXTERNAL_URI else None
    yield MilvusOptions(uri=milvus_uri, token=token, collection_prefix=prefix)
    from pymilvus import MilvusClient

    client = MilvusClient(uri=milvus_uri, token=token or "")
    try:
        for name in client.list_collections():
            if name.startswith(prefix + "_"):
                client.drop_collection(name)
    finally:
        client.close()


async def open_searcher(
    repo: SqlGalleryRepository, target: MilvusOptions, **milvus: Any
) -> MilvusSearcher:
    options = IndexOptions(backend="milvus", milvus=dataclasses.replace(target, **milvus))
    searcher = await create_searcher(repo, options)
    assert isinstance(searcher, MilvusSearcher)
    await searcher.warm()
    return searcher


async def enroll(
    repo: SqlGalleryRepository,
    name: str,
    *vectors: np.ndarray,
    collection: str = "default",
    space: str = L2_SPACE.name,
) -> str:
    person = await repo.create_person(NewPerson(name=name, collection=collection))
    await repo.add_faces(person.id, [NewFace(space=space, embedding=v) for v in vectors])
    return person.id


def near(seed: int, scale: float = 0.01) -> np.ndarray:
    noise = np.random.default_rng(seed + 10_000).standard_normal(8).astype(np.float32)
    return np.asarray(vec(seed) + scale * noise, np.float32)


def test_names_are_valid_milvus_names_and_distances_match_the_other_backends() -> None:
    name = collection_name("facerec", "acme~staff.2024-q1", "arcface:r100@1/v2+x")
    assert name.replace("_", "a").isalnum() and name.startswith("facerec_acme_staff_2024_q1_")
    assert len(name) <= 255
    # The same readable parts, a different pair: never the same collection.
    assert collection_name("facerec", "a-b", "s") != collection_name("facerec", "a.b", "s")
    assert milvus_distance("l2", 25.0) == pytest.approx(5.0)  # Milvus' L2 is squared
    assert milvus_distance("cosine", 0.8) == pytest.approx(0.2)  # and its COSINE a similarity


@pytest.mark.parametrize("space", [L2_SPACE, COS_SPACE], ids=["l2", "cosine"])
async def test_search_agrees_with_exact_search(
    repo: SqlGalleryRepository, target: MilvusOptions, space: Any
) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((240, 8)).astype(np.float32)
    owners = []
    for i in range(0, 240, 2):  # 120 persons, two faces each
        owners += [await enroll(repo, f"p{i}", vectors[i], vectors[i + 1], space=space.name)] * 2
    searcher = await open_searcher(repo, target)
    try:
        assert await searcher.gallery_size("default", space.name) == GallerySize(120, 240)
        for q in rng.standard_normal((25, 8)).astype(np.float32):
            if space.metric == "l2":
                distances = np.linalg.norm(vectors - q, axis=1)
            else:
                unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
                distances = 1.0 - unit @ (q / np.linalg.norm(q))
            expected: list[tuple[str, float]] = []
            for i in np.argsort(distances):
                if owners[i] not in {p for p, _ in expected}:
                    expected.append((owners[i], float(distances[i])))
            hits = await searcher.search("default", space.name, q, k=5)
            assert [h.person_id for h in hits] == [p for p, _ in expected[:5]]
            assert [h.distance for h in hits] == pytest.approx(
                [d for _, d in expected[:5]], abs=1e-4
            )
            assert await searcher.search_many("default", space.name, [q], k=5) == [hits]
    finally:
        await searcher.close()


async def test_collections_spaces_and_tenants_are_isolated(
    repo: SqlGalleryRepository, target: MilvusOptions
) -> None:
    await repo.create_collection("other")
    await repo.create_collection("acme~staff")
    alice = await enroll(repo, "alice", vec(1), vec(2), vec(3))
    bob = await enroll(repo, "bob", vec(4))
    carol = await enroll(repo, "carol", vec(1), collection="other")  # same vector, elsewhere
    dave = await enroll(repo, "dave", vec(1), collection="acme~staff")
    cos_only = await enroll(repo, "cos", vec(4), space=COS_SPACE.name)
    searcher = await open_searcher(repo, target)
    try:
        hits = await searcher.search("default", L2_SPACE.name, near(1), k=5)
        assert [h.person_id for h in hits] == [alice, bob]  # one hit per person
        assert hits[0].distance < 0.1 < hits[1].distance
        cos_hits = await searcher.search("default", COS_SPACE.name, vec(4), k=5)
        assert [h.person_id for h in cos_hits] == [cos_only]
        assert [h.person_id for h in await searcher.search("other", L2_SPACE.name, vec(1), 5)] == [
            carol
        ]
        tenant = await searcher.search("acme~staff", L2_SPACE.name, vec(1), k=5)
        assert [h.person_id for h in tenant] == [dave]
        assert await searcher.search("default", "unknown@1", vec(1), k=1) == []
        assert await searcher.search("empty", L2_SPACE.name, vec(1), k=1) == []
        assert await searcher.gallery_size("default", L2_SPACE.name) == GallerySize(2, 4)
        assert await searcher.count("other", L2_SPACE.name) == 1
        assert len(await searcher.gateway.face_collections()) == 4
    finally:
        await searcher.close()


async def test_erasure_is_unreachable_once_synced(
    repo: SqlGalleryRepository, target: MilvusOptions
) -> None:
    await repo.create_collection("staff")
    alice = await enroll(repo, "alice", vec(1), vec(2))
    bob = await enroll(repo, "bob", vec(3))
    carol = await enroll(repo, "carol", vec(5), collection="staff")
    searcher = await open_searcher(repo, target)
    gateway = searcher.gateway
    name = gateway.name("default", L2_SPACE.name)
    try:
        faces = [f.id for f in await repo.list_faces(alice)]
        assert await gateway.present(name, faces) == set(faces)

        await repo.delete_face(faces[0])
        await searcher.sync()
        assert await gateway.present(name, faces) == {faces[1]}  # queried by id: gone
        hits = await searcher.search("default", L2_SPACE.name, vec(1), k=1)
        assert hits[0].person_id == alice and hits[0].face_id == faces[1]

        await repo.delete_person(alice)
        await searcher.sync()
        assert await gateway.present(name, faces) == set()
        hits = await searcher.search("default", L2_SPACE.name, vec(1), k=5)
        assert [h.person_id for h in hits] == [bob]
        assert await searcher.gallery_size("default", L2_SPACE.name) == GallerySize(1, 1)

        # Replacing a person erases the faces it had.
        old = [f.id for f in await repo.list_faces(bob)]
        await repo.register_person(
            NewPerson(name="bob", id=bob), [NewFace(L2_SPACE.name, vec(9))], replace=True
        )
        await searcher.sync()
        assert await gateway.present(name, old) == set()

        # A deleted collection leaves no Milvus collection behind.
        staff = gateway.name("staff", L2_SPACE.name)
        assert staff in await gateway.face_collections()
        await repo.delete_collection("staff", force=True)
        await searcher.sync()
        assert staff not in await gateway.face_collections()
        assert await searcher.search("staff", L2_SPACE.name, vec(5), k=1) == []
        assert carol
    finally:
        await searcher.close()


@LITE_ONLY  # what a server keeps after a drop: docs/milvus.md
async def test_a_deleted_collection_leaves_no_vector_bytes_in_milvus_lite_files(
    repo: SqlGalleryRepository, target: MilvusOptions
) -> None:
    """Dropping the Milvus collection is the erasure milvus-lite completes at once; a deleted
    face stays in its segment's files until a compaction rewrites it (docs/milvus.md)."""
    pattern = b"ERASEME!" * 4
    canary = np.frombuffer(pattern, dtype="<f4").astype(np.float32)
    await repo.create_collection("staff")
    await enroll(repo, "canary", canary, collection="staff")
    for seed in range(40):
        await enroll(repo, f"p{seed}", vec(seed), collection="staff")
    searcher = await open_searcher(repo, target)
    root = Path(searcher.gateway.uri)

    def holding() -> list[Path]:
        return [p for p in root.rglob("*") if p.is_file() and pattern in p.read_bytes()]

    try:
        hits = await searcher.search("staff", L2_SPACE.name, canary, k=1)
        assert hits and hits[0].distance < 1e-3
        await repo.delete_collection("staff", force=True)
        await searcher.sync()
        assert holding() == []
    finally:
        await searcher.close()


async def test_a_restart_resumes_from_the_stored_position(
    repo: SqlGalleryRepository, target: MilvusOptions, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await enroll(repo, "alice", vec(1))
    with caplog.at_level(logging.INFO, logger="facerec.storage.milvus"):
        first = await open_searcher(repo, target)
    assert "rebuilt from the faces table" in caplog.text  # nothing stored yet
    bob = await enroll(repo, "bob", vec(2))
    assert [h.person_id for h in await first.search("default", L2_SPACE.name, vec(2))] == [bob]
    at = first.applied_seq
    await first.close()

    # While no process follows the log: a face added, one erased.
    carol = await enroll(repo, "carol", vec(3))
    await repo.delete_person(alice)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="facerec.storage.milvus"):
        second = await open_searcher(repo, target)
    try:
        assert f"resumed from seq {at}" in caplog.text
        hits = await second.search("default", L2_SPACE.name, vec(1), k=5)
        assert {h.person_id for h in hits} == {bob, carol}
        assert await second.gallery_size("default", L2_SPACE.name) == GallerySize(2, 2)
    finally:
        await second.close()


@LITE_ONLY
async def test_a_lost_state_or_another_database_rebuilds(
    repo: SqlGalleryRepository, target: MilvusOptions
) -> None:
    alice = await enroll(repo, "alice", vec(1))
    first = await open_searcher(repo, target)
    await first.gateway.drop(first.gateway.state_name)
    # A stale collection of ours that the database does not have any more.
    spec = await repo.get_space(L2_SPACE.name)
    await first.gateway.ensure_faces("gone", spec, m=16, ef=64)
    await first.close()
    second = await open_searcher(repo, target)
    try:
        assert list((await second.gateway.face_collections()).values()) == [
            ("default", L2_SPACE.name)
        ]
        assert [h.person_id for h in await second.search("default", L2_SPACE.name, vec(1))] == [
            alice
        ]
    finally:
        await second.close()


async def test_two_replicas_share_one_milvus(
    repo: SqlGalleryRepository, target: MilvusOptions
) -> None:
    one = await open_searcher(repo, target)
    two = await open_searcher(repo, target)
    try:
        alice = await enroll(repo, "alice", vec(1), vec(2))
        assert [h.person_id for h in await one.search("default", L2_SPACE.name, vec(1))] == [alice]
        # The second replica finds what the first wrote (and skips writing it again).
        assert [h.person_id for h in await two.search("default", L2_SPACE.name, vec(2))] == [alice]
        assert two.applied_seq == one.applied_seq
        face = (await repo.list_faces(alice))[0].id
        await repo.delete_face(face)
        await two.sync()  # the erasing process syncs
        name = one.gateway.name("default", L2_SPACE.name)
        assert await one.gateway.present(name, [face]) == set()
        hits = await one.search("default", L2_SPACE.name, vec(1), k=1)
        assert hits[0].face_id != face
        assert await one.gallery_size("default", L2_SPACE.name) == GallerySize(1, 1)
    finally:
        await one.close()
        await two.close()


@LITE_ONLY
async def test_a_face_erased_while_being_upserted_is_deleted_again(
    repo: SqlGalleryRepository, target: MilvusOptions
) -> None:
    searcher = await open_searcher(repo, target)
    try:
        alice = await enroll(repo, "alice", vec(1))
        face = (await repo.list_faces(alice))[0]
        vectors = await repo.face_vectors([face.id])
        await repo.delete_face(face.id)  # erased after this replica read it
        # The replica now applies its stale read: the second read of the faces table undoes it.
        await searcher._reconcile(("default", L2_SPACE.name), {face.id}, {face.id: vectors[0]})
        name = searcher.gateway.name("default", L2_SPACE.name)
        assert await searcher.gateway.present(name, [face.id]) == set()
    finally:
        await searcher.close()


async def test_unreachable_milvus_is_a_typed_503_error(
    repo: SqlGalleryRepository, tmp_path: Path
) -> None:
    gateway = MilvusGateway(MilvusOptions(uri="http://127.0.0.1:9", timeout_s=1.0))
    searcher = MilvusSearcher(repo, gateway, sql_gallery_sizes(repo.engine), retry_start=False)
    for attempt in (searcher.warm(), searcher.search("default", L2_SPACE.name, vec(1))):
        with pytest.raises(StorageUnavailableError) as caught:
            await attempt
        assert caught.value.code == "milvus_unavailable"
    await searcher.close()
    # The factory connects to nothing: a service starts, and warm() waits for Milvus.
    lazy = await create_searcher(
        repo, IndexOptions(backend="milvus", milvus=MilvusOptions(uri="http://127.0.0.1:9"))
    )
    with pytest.raises(StorageUnavailableError):
        await lazy.search("default", L2_SPACE.name, vec(1))
    await lazy.close()


def test_settings_reach_the_options(tmp_path: Path) -> None:
    settings = Settings(
        index={
            "backend": "milvus",
            "index_dir": tmp_path,
            "milvus_uri": "https://milvus.internal:19530",
            "milvus_token": "root:Milvus",
            "milvus_consistency": "Bounded",
            "milvus_shards": 4,
        }
    )
    found = IndexOptions.from_settings(settings)
    assert found.backend == "milvus"
    assert found.milvus == MilvusOptions(
        uri="https://milvus.internal:19530",
        token="root:Milvus",
        consistency="Bounded",
        shards=4,
    )
    default = MilvusGateway(IndexOptions.from_settings(Settings()).milvus, default_dir=tmp_path)
    assert default.embedded and default.uri == str(tmp_path / "milvus.db")
    with pytest.raises(ValueError):
        Settings(index={"milvus_collection_prefix": "bad-prefix"})
