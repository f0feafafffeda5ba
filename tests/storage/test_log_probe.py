"""The per-request reads answered without SQLAlchemy's async layer (``LogProbe``): the same
answers as the pooled path, another process's writes seen at once, and the pooled path again
whenever the probe cannot answer."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from facerec.errors import NotFoundError
from facerec.storage.log_probe import LogProbe
from facerec.storage.sql_repository import SqlGalleryRepository
from tests.storage.helpers import Backend
from tests.storage.test_registry import enroll


async def test_the_probe_answers_as_the_database_does(backend: Backend) -> None:
    probe = LogProbe(backend.engine)
    engine_b = backend.new_engine()
    repo_b = SqlGalleryRepository(engine_b)
    try:
        assert await probe.has_collection("default") is True
        assert await probe.has_collection("staff") is False
        await repo_b.create_collection("staff")  # another process
        assert await probe.has_collection("staff") is True
        before = await probe.read()
        await enroll(repo_b, "alice", 1, collection="staff")
        after = await probe.read()
        assert before is not None and after is not None and after[0] > before[0]
        assert after[0] == (await backend.repo.log_state()).last_seq
        await repo_b.delete_collection("staff", force=True)
        assert await probe.has_collection("staff") is False
    finally:
        await probe.close()
        await repo_b.close()
        await engine_b.dispose()


async def test_require_collection_through_the_probe_and_without_it(backend: Backend) -> None:
    repo = backend.repo
    await repo.require_collection("default")
    with pytest.raises(NotFoundError):
        await repo.require_collection("nobody")
    await repo._probe.close()  # the next call opens a new probe
    await repo.require_collection("default")


async def test_a_probe_that_cannot_answer_leaves_it_to_the_pooled_path(backend: Backend) -> None:
    repo = backend.repo
    probe = repo._probe
    if backend.kind == "sqlite":
        probe._sqlite_uri = "file:/nonexistent/dir/gallery.db?mode=ro"
    else:  # a prepared statement whose connection went away
        assert await probe.has_collection("default") is True
        assert probe._pg is not None
        await probe._pg.driver_connection.close()
    assert await probe.has_collection("default") is None  # and the probe is closed
    if backend.kind == "sqlite":
        assert await probe.read() is None
    await repo.require_collection("default")  # answered by the pooled path
    with pytest.raises(NotFoundError):
        await repo.require_collection("nobody")
    async with backend.engine.connect() as conn:
        assert (await conn.execute(text("SELECT 1"))).scalar() == 1
