"""Storage of gallery migrations: each collection's active embedding space, kept chips, and the
persisted progress of re-embedding a collection into another space.

The re-embedded faces are the progress: a face of the old space whose kept chip (same
``origin_id``) has no face in the new space yet is still to do, so a restarted process continues
where the last committed batch ended. Every batch is one transaction (its faces, their chip copies
and the counters), taken only while the caller holds the migration's lease.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from facerec.errors import ConflictError, NotFoundError
from facerec.storage.models import NewFace, StoredChip
from facerec.storage.schema import (
    collection_spaces,
    face_chips,
    faces,
    gallery_migrations,
    persons,
)
from facerec.storage.sealing import CHIP_COLUMN, Sealer, open_blob
from facerec.storage.sql_support import (
    insert_ignore,
    read_connection,
    to_face,
    utcnow,
    write_transaction,
)
from facerec.storage.sql_writes import SqlWrites
from facerec.values import Erasure, Face

MIRROR_SUFFIX = "+mirror"
# Statuses: running → complete → cut_over ⇄ rolled_back → finished; failed (given up).
OPEN_STATUSES = ("running", "complete", "cut_over", "rolled_back")


@dataclass(frozen=True)
class ActiveSpace:
    collection: str
    embedder: str
    space: str
    previous_embedder: str | None = None
    previous_space: str | None = None
    migration_id: str | None = None


@dataclass(frozen=True)
class MigrationRecord:
    id: str
    collection: str
    from_embedder: str
    from_space: str
    to_embedder: str
    to_space: str
    status: str
    total: int
    done: int
    without_chip: int
    batches: int
    batch_size: int
    error: str | None
    report: dict[str, Any] | None
    lease_owner: str | None
    lease_until: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class PendingFace:
    """A face still to re-embed: where it belongs and its kept chip (opened)."""

    face: Face
    origin_id: str
    chip: StoredChip


def source_spaces(space: str) -> list[str]:
    """The stored spaces of one embedder's vectors: its space and its mirror-averaged one."""
    return [space, space + MIRROR_SUFFIX]


def migration_not_found(migration_id: str) -> NotFoundError:
    return NotFoundError(
        f"migration {migration_id!r} not found",
        code="migration_not_found",
        migration_id=migration_id,
    )


class SqlMigrationStore(SqlWrites):
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

    # ---- the faces to re-embed -----------------------------------------------------------------

    def _todo(self, record: MigrationRecord, source: str, target: str) -> ColumnElement[bool]:
        """Faces of ``source`` (and its mirror space) whose chip has no copy in ``target``."""
        copy = face_chips.alias("copy")
        target_face = faces.alias("target_face")
        copied = (
            select(copy.c.face_id)
            .select_from(copy.join(target_face, copy.c.face_id == target_face.c.id))
            .where(copy.c.origin_id == face_chips.c.origin_id, target_face.c.space == target)
        )
        return and_(
            faces.c.collection == record.collection,
            faces.c.space.in_(source_spaces(source)),
            ~exists(copied),
        )

    async def pending(
        self, record: MigrationRecord, limit: int, *, reverse: bool = False
    ) -> list[PendingFace]:
        """Up to ``limit`` faces still to re-embed (``reverse``: from the new space back into
        the old one, for a rollback after faces were enrolled in the new space)."""
        source, target = (
            (record.to_space, record.from_space)
            if reverse
            else (record.from_space, record.to_space)
        )
        query = (
            select(*faces.c, face_chips.c.origin_id, face_chips.c.format, face_chips.c.landmarks)
            .add_columns(face_chips.c.chip)
            .select_from(faces.join(face_chips, face_chips.c.face_id == faces.c.id))
            .where(self._todo(record, source, target))
            .order_by(faces.c.created_at, faces.c.id)
            .limit(limit)
        )
        async with read_connection(self._engine) as conn:
            rows = (await conn.execute(query)).all()
        result = []
        for row in rows:
            m = row._mapping
            data = open_blob(self._sealer, m["chip"], column=CHIP_COLUMN, row_id=m["id"])
            landmarks = tuple((float(x), float(y)) for x, y in m["landmarks"])
            chip = StoredChip(data, m["format"], landmarks, origin_id=m["origin_id"])
            result.append(PendingFace(to_face(row, self._sealer), m["origin_id"], chip))
        return result

    async def count_pending(self, record: MigrationRecord, *, reverse: bool = False) -> int:
        source, target = (
            (record.to_space, record.from_space)
            if reverse
            else (record.from_space, record.to_space)
        )
        query = (
            select(func.count())
            .select_from(faces.join(face_chips, face_chips.c.face_id == faces.c.id))
            .where(self._todo(record, source, target))
        )
        async with read_connection(self._engine) as conn:
            return int((await conn.execute(query)).scalar() or 0)

    async def source_counts(self, record: MigrationRecord) -> tuple[int, list[tuple[str, str]]]:
        """(faces of the old space, [(person id, face id)] of those without a kept chip)."""
        where = and_(
            faces.c.collection == record.collection,
            faces.c.space.in_(source_spaces(record.from_space)),
        )
        chipless = (
            select(faces.c.person_id, faces.c.id)
            .select_from(faces.outerjoin(face_chips, face_chips.c.face_id == faces.c.id))
            .where(where, face_chips.c.face_id.is_(None))
            .order_by(faces.c.person_id, faces.c.id)
        )
        async with read_connection(self._engine) as conn:
            total = (await conn.execute(select(func.count()).where(where))).scalar()
            missing = [(r[0], r[1]) for r in await conn.execute(chipless)]
        return int(total or 0), missing

    async def write_batch(
        self,
        record: MigrationRecord,
        owner: str | None,
        done: Sequence[tuple[PendingFace, NewFace]],
        *,
        count: bool = True,
    ) -> int | None:
        """One batch in one transaction: the new faces (with their chip copies) of the sources
        that still exist, and the counters; nothing when ``owner`` lost the lease. Returns the
        faces written, None when the lease was lost."""
        async with write_transaction(self._engine) as conn:
            if owner is not None:
                renewed = await conn.execute(
                    update(gallery_migrations)
                    .where(
                        gallery_migrations.c.id == record.id,
                        gallery_migrations.c.lease_owner == owner,
                        gallery_migrations.c.status == "running",
                    )
                    .values(updated_at=utcnow())
                )
                if renewed.rowcount != 1:
                    return None
            sources = [p.face.id for p, _ in done]
            alive = set(
                (
                    await conn.execute(
                        select(faces.c.id)
                        .join(persons, persons.c.id == faces.c.person_id)
                        .where(faces.c.id.in_(sources))
                        .with_for_update()
                    )
                ).scalars()
            )
            written = 0
            for pending, new_face in done:
                if pending.face.id not in alive:  # erased meanwhile: never copy it
                    continue
                await self._insert_faces(
                    conn, pending.face.person_id, record.collection, [new_face]
                )
                written += 1
            if count:
                await conn.execute(
                    update(gallery_migrations)
                    .where(gallery_migrations.c.id == record.id)
                    .values(
                        done=gallery_migrations.c.done + written,
                        batches=gallery_migrations.c.batches + 1,
                        updated_at=utcnow(),
                    )
                )
            return written

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

    async def faces_in(self, collection: str, spaces: Sequence[str]) -> list[tuple[Face, str]]:
        """Every face of these spaces that has a kept chip, with its chip's origin id."""
        query = (
            select(*faces.c, face_chips.c.origin_id)
            .select_from(faces.join(face_chips, face_chips.c.face_id == faces.c.id))
            .where(faces.c.collection == collection, faces.c.space.in_(list(spaces)))
            .order_by(faces.c.id)
        )
        async with read_connection(self._engine) as conn:
            rows = (await conn.execute(query)).all()
        return [(to_face(r, self._sealer), r._mapping["origin_id"]) for r in rows]


def _wrong_status(record: MigrationRecord, action: str) -> ConflictError:
    code = "migration_not_complete" if record.status == "running" else "migration_wrong_status"
    return ConflictError(
        f"cannot {action} migration {record.id!r} while it is {record.status}",
        code=code,
        migration_id=record.id,
        status=record.status,
    )
