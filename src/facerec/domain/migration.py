"""Safe migration of a collection to another embedding model.

``start`` claims the collection (one open migration at a time) and a worker re-embeds every kept
face chip into the new space in batches, each batch one transaction, while searches keep using
the collection's active (old) space. Progress is the stored faces themselves, so a crashed or
restarted process continues after the last committed batch (whoever takes the expired lease).
When every chip is embedded, a report compares the two spaces on the collection's own faces;
``cut_over`` switches the active space atomically, ``rollback`` switches back (the old vectors are
kept until ``finish`` drops them). Faces enrolled meanwhile are caught up before each switch.

The worker that re-embeds, resumes and reports is :mod:`.migration_worker`; this module holds the
steps an admin calls.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime

from facerec.domain.migration_worker import MigrationWorker
from facerec.errors import ConflictError
from facerec.inference.types import ModelTask
from facerec.storage.gallery_migration import SqlMigrationStore
from facerec.storage.gallery_migration_records import MigrationRecord
from facerec.storage.models import EmbeddingSpace, check_collection_key
from facerec.values import MIRROR_SUFFIX, Metric


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


class GalleryMigrations(MigrationWorker):
    """The steps of a migration an admin calls, on the worker that runs it."""

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

    # ---- switches ------------------------------------------------------------------------------

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
