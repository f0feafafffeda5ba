"""The faces of a gallery migration: which faces of the old space still need re-embedding (a
face whose kept chip has no copy in the new space yet), and the batch that writes the re-embedded
ones.

Apart from :mod:`facerec.storage.gallery_migration` (a migration's record, lease and switches)
because these queries are the migration's progress: the faces themselves, not a counter. The
store is put together as :class:`~facerec.storage.gallery_migration.SqlMigrationStore`.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.sql.elements import ColumnElement

from facerec.storage.gallery_migration_records import MigrationRecord, PendingFace, source_spaces
from facerec.storage.models import NewFace, StoredChip
from facerec.storage.schema import face_chips, faces, gallery_migrations, persons
from facerec.storage.sealing import CHIP_COLUMN, open_blob
from facerec.storage.sql_support import read_connection, to_face, utcnow, write_transaction
from facerec.storage.sql_writes import SqlWrites
from facerec.values import Face


class SqlMigrationFaces(SqlWrites):
    """The faces to re-embed and the batches that write them back."""

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
