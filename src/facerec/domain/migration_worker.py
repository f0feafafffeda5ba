"""The worker side of gallery migrations: re-embedding a migration's kept chips batch by batch
in the background while this process holds the lease, resuming orphaned migrations, catching up
faces enrolled meanwhile, and the report stored on completion.

Apart from :mod:`facerec.domain.migration` (the steps an admin calls: start, cut-over, rollback,
finish) because this is what runs unattended: its tasks, its thread for the embedder and its
lease. :class:`~facerec.domain.migration.GalleryMigrations` puts both together.
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
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facerec.domain.chips import decode_chip
from facerec.domain.migration_report import compare_spaces
from facerec.errors import FaceRecError, InvalidInputError
from facerec.inference.base import AlignedChip, FaceEmbedder
from facerec.inference.manager import ModelManager
from facerec.inference.types import ModelTask
from facerec.storage.gallery_migration import SqlMigrationStore
from facerec.storage.gallery_migration_records import MigrationRecord, PendingFace, source_spaces
from facerec.storage.models import NewFace
from facerec.storage.sql_repository import SqlGalleryRepository
from facerec.values import Erasure

log = logging.getLogger(__name__)

Progress = Callable[[MigrationRecord], None]


class MigrationWorker:
    """Re-embeds the chips of running migrations; the state every migration step shares."""

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

    # ---- report --------------------------------------------------------------------------------

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
