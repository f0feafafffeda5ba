"""Erasure of photo records: one photo, a person's tags and confirmed faces, a collection's photos.

Faces a photo gave to persons (assigned, accepted) are the persons' enrolled faces and are erased
with them, never with the photo. A photo's face candidates go with its faces (the database
cascades them); those naming an erased person are deleted here, also when foreign keys are not
enforced.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from facerec.storage.photo_reads import PhotoReads
from facerec.storage.photo_records import CONFIRMED, UNKNOWN, PhotoErasure, photo_not_found
from facerec.storage.photo_schema import (
    photo_face_candidates,
    photo_faces,
    photo_rejections,
    photos,
)
from facerec.storage.sql_support import mark_erasure, write_transaction


class PhotoErasures(PhotoReads):
    """Erasures of photo records; every method is one transaction."""

    async def delete_photo(self, photo_id: str) -> PhotoErasure:
        """Erase a photo and every record of its faces (candidates and rejections cascade).
        Faces it gave to persons (assigned, accepted) are the persons' and stay."""
        async with write_transaction(self._engine) as conn:
            mark_erasure(conn)
            row = (
                await conn.execute(select(photos.c.image_sha256).where(photos.c.id == photo_id))
            ).first()
            if row is None:
                raise photo_not_found(photo_id)
            face_ids = await _ids(
                conn, select(photo_faces.c.id).where(photo_faces.c.photo_id == photo_id)
            )
            await _delete_photos(conn, [photo_id])
        return PhotoErasure((photo_id,), tuple(face_ids), (), (row[0],))

    async def erase_persons(self, person_ids: Sequence[str]) -> PhotoErasure:
        """A person's erasure: faces confirmed as the person are deleted (box and embedding);
        faces only tagged lose the tag and are never clustered (so the erased person does not
        come back as a suggestion). Candidates and rejections naming the person cascade."""
        wanted = list(dict.fromkeys(person_ids))
        if not wanted:
            return PhotoErasure()
        async with write_transaction(self._engine) as conn:
            mark_erasure(conn)
            confirmed = await _ids(
                conn,
                select(photo_faces.c.id).where(
                    photo_faces.c.person_id.in_(wanted), photo_faces.c.status == CONFIRMED
                ),
            )
            if confirmed:
                await conn.execute(delete(photo_faces).where(photo_faces.c.id.in_(confirmed)))
            tagged = await _ids(
                conn, select(photo_faces.c.id).where(photo_faces.c.person_id.in_(wanted))
            )
            if tagged:
                await conn.execute(
                    update(photo_faces)
                    .where(photo_faces.c.id.in_(tagged))
                    .values(
                        person_id=None,
                        status=UNKNOWN,
                        decided_by="erased",
                        excluded=1,
                        cluster_id=None,
                    )
                )
            # Also when foreign keys are not enforced (cascade is the database's job).
            await conn.execute(
                delete(photo_face_candidates).where(photo_face_candidates.c.person_id.in_(wanted))
            )
            await conn.execute(
                delete(photo_rejections).where(photo_rejections.c.person_id.in_(wanted))
            )
        return PhotoErasure(face_ids=tuple(confirmed), untagged_face_ids=tuple(tagged))

    async def forget_enrolled(self, face_ids: Sequence[str]) -> None:
        """Enrolled faces erased from their person: the photo faces they came from no longer
        point at them."""
        if not face_ids:
            return
        async with write_transaction(self._engine) as conn:
            await conn.execute(
                update(photo_faces)
                .where(photo_faces.c.enrolled_face_id.in_(list(face_ids)))
                .values(enrolled_face_id=None)
            )

    async def erase_collection(self, collection: str) -> PhotoErasure:
        """Every photo of a deleted collection."""
        async with write_transaction(self._engine) as conn:
            mark_erasure(conn)
            rows = (
                await conn.execute(
                    select(photos.c.id, photos.c.image_sha256).where(
                        photos.c.collection == collection
                    )
                )
            ).all()
            ids = [r[0] for r in rows]
            if not ids:
                return PhotoErasure()
            await _delete_photos(conn, ids)
        return PhotoErasure(photo_ids=tuple(ids), image_sha256s=tuple({r[1] for r in rows}))


async def _ids(conn: AsyncConnection, query: Any) -> list[str]:
    return list((await conn.execute(query)).scalars().all())


async def _delete_photos(conn: AsyncConnection, photo_ids: list[str]) -> None:
    """The photos, their faces and their rejections (candidates cascade with the faces)."""
    await conn.execute(delete(photo_faces).where(photo_faces.c.photo_id.in_(photo_ids)))
    await conn.execute(delete(photo_rejections).where(photo_rejections.c.photo_id.in_(photo_ids)))
    await conn.execute(delete(photos).where(photos.c.id.in_(photo_ids)))
