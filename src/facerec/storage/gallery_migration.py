"""Storage of gallery migrations: each collection's active embedding space, and the persisted
progress of re-embedding a collection into another space.

The re-embedded faces are the progress: a face of the old space whose kept chip (same
``origin_id``) has no face in the new space yet is still to do, so a restarted process continues
where the last committed batch ended. Every batch is one transaction (its faces, their chip copies
and the counters), taken only while the caller holds the migration's lease.

This module holds a migration's record, its lease, its status and the switches of the active
space; the values are in :mod:`.gallery_migration_records`, the faces to re-embed and the batch
writes in :mod:`.gallery_migration_faces`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from facerec.errors import ConflictError
from facerec.storage.gallery_migration_faces import SqlMigrationFaces
from facerec.storage.gallery_migration_records import (
    ActiveSpace,
    MigrationRecord,
    migration_not_found,
    source_spaces,
)
from facerec.storage.schema import collection_spaces, faces, gallery_migrations
from facerec.storage.sealing import Sealer
from facerec.storage.sql_support import (
    insert_ignore,
    read_connection,
    utcnow,
    write_transaction,
)
from facerec.values import Erasure


class SqlMigrationStore(SqlMigrationFaces):
    def __init__(self, engine: AsyncEngine, sealer: Sealer | None = None) -> None:
        super().__init__(engine, sealer)

    # ---- active spaces -------------------------------------------------------------------------

    async def active(self, collection: str) -> ActiveSpace | None:
        async with read_connection(self._engine) as conn:
            return await self._active(conn, collection)

    async def _active(self, conn: AsyncConnection, collection: str) -> ActiveSpace | None:
        query = select(*collection_spaces.c).where(collection_spaces.c.collection == collection)
        row = (await conn.execute(query)).first()
        if row is None:
            return None
        m = row._mapping
        return ActiveSpace(
            m["collection"],
            m["embedder"],
            m["space"],
            m["previous_embedder"],
            m["previous_space"],
            m["migration_id"],
        )

    async def adopt(self, collection: str, embedder: str, space: str) -> None:
        """Make ``space`` the collection's active one unless it has one already."""
        async with write_transaction(self._engine) as conn:
            values = {
                "collection": collection,
                "embedder": embedder,
                "space": space,
                "updated_at": utcnow(),
            }
            await insert_ignore(conn, collection_spaces, values, "collection")

    # ---- migrations ----------------------------------------------------------------------------

    async def create(self, record: MigrationRecord) -> MigrationRecord:
        """Store a new migration and claim the collection for it: 409 ``migration_running``
        while another migration of the collection is open (one conditional update decides)."""
        async with write_transaction(self._engine) as conn:
            now = utcnow()
            await insert_ignore(
                conn,
                collection_spaces,
                {
                    "collection": record.collection,
                    "embedder": record.from_embedder,
                    "space": record.from_space,
                    "updated_at": now,
                },
                "collection",
            )
            claimed = await conn.execute(
                update(collection_spaces)
                .where(
                    collection_spaces.c.collection == record.collection,
                    collection_spaces.c.migration_id.is_(None),
                )
                .values(migration_id=record.id, updated_at=now)
            )
            if claimed.rowcount != 1:
                active = await self._active(conn, record.collection)
                raise ConflictError(
                    "another migration of this collection is open; finish it first",
                    code="migration_running",
                    migration_id=active.migration_id if active else None,
                )
            values = vars(record) | {"created_at": now, "updated_at": now}
            await conn.execute(insert(gallery_migrations).values(values))
        return await self.get(record.id)

    async def get(self, migration_id: str) -> MigrationRecord:
        async with read_connection(self._engine) as conn:
            return await self._get(conn, migration_id)

    async def _get(self, conn: AsyncConnection, migration_id: str) -> MigrationRecord:
        query = select(*gallery_migrations.c).where(gallery_migrations.c.id == migration_id)
        row = (await conn.execute(query)).first()
        if row is None:
            raise migration_not_found(migration_id)
        return MigrationRecord(**dict(row._mapping))

    async def migrations(
        self, *, collections: Sequence[str] | None = None, status: Sequence[str] | None = None
    ) -> list[MigrationRecord]:
        query = select(*gallery_migrations.c).order_by(gallery_migrations.c.created_at)
        if collections is not None:
            query = query.where(gallery_migrations.c.collection.in_(list(collections)))
        if status is not None:
            query = query.where(gallery_migrations.c.status.in_(list(status)))
        async with read_connection(self._engine) as conn:
            return [MigrationRecord(**dict(r._mapping)) for r in await conn.execute(query)]

    async def claim(self, migration_id: str, owner: str, lease_seconds: float) -> bool:
        """Take (or renew) the lease of a running migration; False while another live process
        holds it."""
        now = utcnow()
        async with write_transaction(self._engine) as conn:
            result = await conn.execute(
                update(gallery_migrations)
                .where(
                    gallery_migrations.c.id == migration_id,
                    gallery_migrations.c.status == "running",
                    or_(
                        gallery_migrations.c.lease_owner.is_(None),
                        gallery_migrations.c.lease_owner == owner,
                        gallery_migrations.c.lease_until < now,
                    ),
                )
                .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds))
            )
            return bool(result.rowcount == 1)

    async def release(self, migration_id: str, owner: str) -> None:
        async with write_transaction(self._engine) as conn:
            await conn.execute(
                update(gallery_migrations)
                .where(
                    gallery_migrations.c.id == migration_id,
                    gallery_migrations.c.lease_owner == owner,
                )
                .values(lease_owner=None, lease_until=None)
            )

    async def set_status(
        self,
        migration_id: str,
        status: str,
        *,
        allowed: Sequence[str],
        report: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> bool:
        values: dict[str, Any] = {"status": status, "updated_at": utcnow()}
        if report is not None:
            values["report"] = report
        if error is not None:
            values["error"] = error[:2000]
        if status not in ("running",):
            values |= {"lease_owner": None, "lease_until": None}
        async with write_transaction(self._engine) as conn:
            result = await conn.execute(
                update(gallery_migrations)
                .where(
                    gallery_migrations.c.id == migration_id,
                    gallery_migrations.c.status.in_(list(allowed)),
                )
                .values(values)
            )
            if status == "failed":
                await self._release_collection(conn, migration_id)
            return bool(result.rowcount == 1)

    async def _release_collection(self, conn: AsyncConnection, migration_id: str) -> None:
        await conn.execute(
            update(collection_spaces)
            .where(collection_spaces.c.migration_id == migration_id)
            .values(migration_id=None, updated_at=utcnow())
        )

    # ---- cut-over, rollback, finish -------------------------------------------------------------

    async def switch(
        self, record: MigrationRecord, *, to_new: bool, allowed: Sequence[str]
    ) -> MigrationRecord:
        """Make the new (``to_new``) or the old space the active one, atomically with the
        migration's status."""
        now = utcnow()
        embedder, space = (
            (record.to_embedder, record.to_space)
            if to_new
            else (record.from_embedder, record.from_space)
        )
        previous = (
            (record.from_embedder, record.from_space)
            if to_new
            else (record.to_embedder, record.to_space)
        )
        async with write_transaction(self._engine) as conn:
            result = await conn.execute(
                update(gallery_migrations)
                .where(
                    gallery_migrations.c.id == record.id,
                    gallery_migrations.c.status.in_(list(allowed)),
                )
                .values(status="cut_over" if to_new else "rolled_back", updated_at=now)
            )
            if result.rowcount != 1:
                raise _wrong_status(await self._get(conn, record.id), "switch")
            await conn.execute(
                update(collection_spaces)
                .where(collection_spaces.c.collection == record.collection)
                .values(
                    embedder=embedder,
                    space=space,
                    previous_embedder=previous[0],
                    previous_space=previous[1],
                    updated_at=now,
                )
            )
            return await self._get(conn, record.id)

    async def finish(self, record: MigrationRecord) -> tuple[MigrationRecord, Erasure]:
        """Drop the old space's vectors (and their chip copies) and close the migration."""
        async with write_transaction(self._engine) as conn:
            result = await conn.execute(
                update(gallery_migrations)
                .where(
                    gallery_migrations.c.id == record.id, gallery_migrations.c.status == "cut_over"
                )
                .values(status="finished", updated_at=utcnow())
            )
            if result.rowcount != 1:
                raise _wrong_status(await self._get(conn, record.id), "finish")
            removed = await self._drop_faces(
                conn,
                and_(
                    faces.c.collection == record.collection,
                    faces.c.space.in_(source_spaces(record.from_space)),
                ),
            )
            await conn.execute(
                update(collection_spaces)
                .where(collection_spaces.c.collection == record.collection)
                .values(
                    previous_embedder=None,
                    previous_space=None,
                    migration_id=None,
                    updated_at=utcnow(),
                )
            )
            return await self._get(conn, record.id), removed


def _wrong_status(record: MigrationRecord, action: str) -> ConflictError:
    code = "migration_not_complete" if record.status == "running" else "migration_wrong_status"
    return ConflictError(
        f"cannot {action} migration {record.id!r} while it is {record.status}",
        code=code,
        migration_id=record.id,
        status=record.status,
    )
