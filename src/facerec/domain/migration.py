"""Safe migration of a collection to another embedding model.

``start`` claims the collection (one open migration at a time) and a worker re-embeds every kept
face chip into the new space in batches, each batch one transaction, while searches keep using
the collection's active (old) space. Progress is the stored faces themselves, so a crashed or
restarted process continues after the last committed batch (whoever takes the expired lease).
When every chip is embedded, a report compares the two spaces on the collection's own faces;
``cut_over`` switches the active space atomically, ``rollback`` switches back (the old vectors are
kept until ``finish`` drops them). Faces enrolled meanwhile are caught up before each switch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facerec.domain.chips import decode_chip
from facerec.domain.migration_report import compare_spaces
from facerec.errors import ConflictError, FaceRecError, InvalidInputError
from facerec.inference.base import AlignedChip, FaceEmbedder
from facerec.inference.manager import ModelManager
from facerec.inference.types import ModelTask
from facerec.storage.gallery_migration import (
    MIRROR_SUFFIX,
    MigrationRecord,
    PendingFace,
    SqlMigrationStore,
    source_spaces,
)
from facerec.storage.models import EmbeddingSpace, NewFace, check_collection_key
from facerec.storage.sql_repository import SqlGalleryRepository
from facerec.values import Erasure, Metric

log = logging.getLogger(__name__)

Progress = Callable[[MigrationRecord], None]


def active_space_of(
    store: SqlMigrationStore,
) -> Callable[[str], Awaitable[tuple[str, str] | None]]:
    """The QueryRunner's view of a collection's active space: (embedder, space)."""

    async def active(collection: str) -> tuple[str, str] | None:
        found = await store.active(collection)
        return None if found is None else (found.embedder, found.space)

    return active


def _base(space: str) -> str:
    return space[: -len(MIRROR_SUFFIX)] if space.endswith(MIRROR_SUFFIX) else space


class GalleryMigrations:
    def __init__(
        self,
        *,
        store: SqlMigrationStore,
        repository: SqlGalleryRepository,
        models: ModelManager,
        purge: Callable[[Erasure], Awaitable[None]] | None = None,
        on_switch: Callable[[str], None] | None = None,
        batch_size: int = 32,
        lease_seconds: float = 30.0,
    ) -> None:
        self.store = store
        self.repository = repository
        self.models = models
        self._purge = purge
        self._on_switch = on_switch or (lambda collection: None)
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="facerec-migration")
        self._tasks: dict[str, asyncio.Task[MigrationRecord]] = {}

    # ---- starting ------------------------------------------------------------------------------

    async def start(self, collection: str, to_model: str) -> MigrationRecord:
        """A new migration of ``collection`` to ``to_model`` (400 ``model_not_installed``, 404
        for an unknown collection, 409 ``migration_running`` / ``nothing_to_migrate`` /
        ``already_in_space``); nothing is written unless it can start."""
        check_collection_key(collection)
        await self.repository.get_collection(collection)  # 404 first
        name = self.models.resolve(ModelTask.EMBEDDING, to_model)
        model = self._embedder(name)
        active = await self.store.active(collection)
        if active is None:
            counts = await self.repository.space_counts(collection)
            held: dict[str, int] = {}
            for space, n in counts.items():
                held[_base(space)] = held.get(_base(space), 0) + n
            if not held:
                raise ConflictError(
                    f"collection {collection!r} has no faces to migrate",
                    code="nothing_to_migrate",
                )
            from_space = max(held, key=lambda s: held[s])
            from_embedder = from_space.split("@", 1)[0]
        else:
            from_space, from_embedder = active.space, active.embedder
        if model.space == from_space:
            raise ConflictError(
                f"collection {collection!r} already answers from {from_space!r}",
                code="already_in_space",
                space=from_space,
            )
        metric: Metric = "cosine" if model.metric == "cosine" else "l2"
        await self.repository.ensure_space(EmbeddingSpace(model.space, model.dim, metric))
        record = MigrationRecord(
            id=str(uuid.uuid4()),
            collection=collection,
            from_embedder=from_embedder,
            from_space=from_space,
            to_embedder=name,
            to_space=model.space,
            status="running",
            total=0,
            done=0,
            without_chip=0,
            batches=0,
            batch_size=self.batch_size,
            error=None,
            report=None,
            lease_owner=None,
            lease_until=None,
            created_at=datetime.now(UTC),
            updated_at=datetime.now(UTC),
        )
        total, chipless = await self.store.source_counts(record)
        record = replace(record, total=total - len(chipless), without_chip=len(chipless))
        return await self.store.create(record)

    # ---- the worker ----------------------------------------------------------------------------

    def launch(self, migration_id: str) -> asyncio.Task[MigrationRecord]:
        """Run the migration in the background (once per process)."""
        task = self._tasks.get(migration_id)
        if task is None or task.done():
            task = asyncio.create_task(self.run(migration_id))
            self._tasks[migration_id] = task
        return task

    async def resume_all(self) -> list[str]:
        """Launch every running migration whose worker is gone (expired lease) or absent."""
        launched = []
        for record in await self.store.migrations(status=["running"]):
            if record.id in self._tasks and not self._tasks[record.id].done():
                continue
            self.launch(record.id)
            launched.append(record.id)
        return launched

    async def watch(self, interval: float = 5.0) -> None:
        """Keep resuming orphaned migrations (a crashed process's, a CLI's that stopped)."""
        while True:
            try:
                await self.resume_all()
            except FaceRecError as exc:  # storage outage: try again later
                log.warning("migration watch: %s", exc)
            await asyncio.sleep(interval)

    async def run(
        self,
        migration_id: str,
        *,
        max_batches: int | None = None,
        release: bool = True,
        progress: Progress | None = None,
    ) -> MigrationRecord:
        """Re-embed the pending faces batch by batch while this process holds the lease; on
        completion store the report. ``max_batches``/``release=False``: stop early, as a crash
        would (tests)."""
        record = await self.store.get(migration_id)
        if record.status != "running":
            return record
        if not await self.store.claim(migration_id, self.owner, self.lease_seconds):
            return record
        batches = 0
        try:
            while True:
                pending = await self.store.pending(record, self.batch_size)
                if not pending:
                    report = await self.report(record)
                    await self.store.set_status(
                        migration_id, "complete", allowed=["running"], report=report
                    )
                    break
                done = await self._reembed(record, pending, reverse=False)
                written = await self.store.write_batch(record, self.owner, done)
                if written is None:  # another process took the lease over
                    release = False
                    break
                batches += 1
                if progress is not None:
                    progress(await self.store.get(migration_id))
                if max_batches is not None and batches >= max_batches:
                    break
                if not await self.store.claim(migration_id, self.owner, self.lease_seconds):
                    release = False
                    break
        except asyncio.CancelledError:
            release = False
            raise
        except FaceRecError as exc:
            log.warning("migration %s failed: %s", migration_id, exc)
            await self.store.set_status(
                migration_id, "failed", allowed=["running"], error=f"{exc.code}: {exc}"
            )
        finally:
            if release:
                with contextlib.suppress(FaceRecError):
                    await self.store.release(migration_id, self.owner)
        return await self.store.get(migration_id)

    async def _reembed(
        self, record: MigrationRecord, pending: list[PendingFace], *, reverse: bool
    ) -> list[tuple[PendingFace, NewFace]]:
        name, space = (
            (record.from_embedder, record.from_space)
            if reverse
            else (record.to_embedder, record.to_space)
        )
        chips = [decode_chip(p.chip) for p in pending]
        loop = asyncio.get_running_loop()
        vectors = await loop.run_in_executor(self._pool, self._embed, name, chips)
        return [
            (
                p,
                NewFace(
                    space=space,
                    embedding=v,
                    quality=p.face.quality,
                    bbox=p.face.bbox,
                    image_sha256=p.face.image_sha256,
                    chip=p.chip,
                ),
            )
            for p, v in zip(pending, vectors, strict=True)
        ]

    def _embed(self, name: str, chips: list[AlignedChip]) -> NDArray[np.float32]:
        with self.models.use(name, FaceEmbedder) as model:
            return model.embed_aligned(chips)

    def _embedder(self, name: str) -> FaceEmbedder:
        model = self.models.peek(name)
        if not isinstance(model, FaceEmbedder):
            raise InvalidInputError(f"{name!r} is not an embedder", code="not_an_embedder")
        return model

    async def _catch_up(self, record: MigrationRecord, *, reverse: bool) -> int:
        """Re-embed faces enrolled in the source space since the last pass (no lease: the
        migration is not running, its status decides who may switch)."""
        if reverse:  # the old model answers again: it must be installed
            self.models.resolve(ModelTask.EMBEDDING, record.from_embedder)
        total = 0
        while True:
            pending = await self.store.pending(record, self.batch_size, reverse=reverse)
            if not pending:
                return total
            done = await self._reembed(record, pending, reverse=reverse)
            total += await self.store.write_batch(record, None, done, count=False) or 0

    # ---- report, switches ----------------------------------------------------------------------

    async def report(self, record: MigrationRecord) -> dict[str, Any]:
        old = await self.store.faces_in(record.collection, source_spaces(record.from_space))
        new = await self.store.faces_in(record.collection, [record.to_space])
        _, chipless = await self.store.source_counts(record)
        thresholds = {}
        for key, name in (("old", record.from_embedder), ("new", record.to_embedder)):
            try:
                model = self._embedder(name)
                thresholds[key] = (model.metric, model.distance_threshold)
            except FaceRecError:
                thresholds[key] = ("cosine", 0.5)
        return compare_spaces(old, new, thresholds, chipless)

    async def get(self, migration_id: str) -> MigrationRecord:
        return await self.store.get(migration_id)

    async def cut_over(self, migration_id: str) -> MigrationRecord:
        record = await self.store.get(migration_id)
        self._require(record, ("complete", "rolled_back"), "cut over")
        self.models.resolve(ModelTask.EMBEDDING, record.to_embedder)  # 400 when uninstalled
        await self._catch_up(record, reverse=False)
        switched = await self.store.switch(record, to_new=True, allowed=("complete", "rolled_back"))
        self._on_switch(record.collection)
        return switched

    async def rollback(self, migration_id: str) -> MigrationRecord:
        record = await self.store.get(migration_id)
        self._require(record, ("cut_over",), "roll back")
        await self._catch_up(record, reverse=True)
        switched = await self.store.switch(record, to_new=False, allowed=("cut_over",))
        self._on_switch(record.collection)
        return switched

    async def finish(self, migration_id: str, *, force: bool = False) -> MigrationRecord:
        """Drop the old space's vectors. Faces without a chip exist only there: unless
        ``force``, refuse (409 ``faces_need_new_photo``) rather than erase them silently."""
        record = await self.store.get(migration_id)
        self._require(record, ("cut_over",), "finish")
        if record.without_chip and not force:
            raise ConflictError(
                f"{record.without_chip} faces have no kept chip and exist only in the old space: "
                "enroll a new photo of those persons, or finish with force=true to erase them",
                code="faces_need_new_photo",
                migration_id=record.id,
                faces=record.without_chip,
            )
        await self._catch_up(record, reverse=False)  # faces enrolled just before the cut-over
        finished, removed = await self.store.finish(record)
        if self._purge is not None:
            await self._purge(removed)
        self._on_switch(record.collection)
        return finished

    @staticmethod
    def _require(record: MigrationRecord, statuses: tuple[str, ...], action: str) -> None:
        if record.status in statuses:
            return
        code = "migration_not_complete" if record.status == "running" else "migration_wrong_status"
        raise ConflictError(
            f"cannot {action} migration {record.id!r} while it is {record.status}",
            code=code,
            migration_id=record.id,
            status=record.status,
        )

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for migration_id in list(self._tasks):
            with contextlib.suppress(Exception):
                await self.store.release(migration_id, self.owner)
        self._pool.shutdown(wait=False, cancel_futures=True)
