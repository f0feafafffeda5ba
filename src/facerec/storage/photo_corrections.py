"""Corrections of stored photo faces: a new tag, a re-tag of a photo, "not this person", and
photo faces enrolled as a person's faces (an assignment, an accepted suggestion).

Enrolling writes the person (when created), its faces and the photo faces in one transaction,
through the gallery's own write steps, so the change log and pgvector mirror are kept exactly as
for an enrollment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import delete, insert, select, update

from facerec.errors import ConflictError
from facerec.storage.models import NewFace, NewPerson
from facerec.storage.photo_reads import PhotoReads
from facerec.storage.photo_records import (
    CONFIRMED,
    UNKNOWN,
    PhotoFace,
    StoredCandidate,
    candidate_row,
)
from facerec.storage.photo_schema import photo_face_candidates, photo_faces, photo_rejections
from facerec.storage.schema import persons
from facerec.storage.sql_support import (
    change,
    insert_ignore,
    log_changes,
    utcnow,
    write_transaction,
)
from facerec.values import Face, Person


class PhotoCorrections(PhotoReads):
    """Tag changes of photo faces; every method is one transaction."""

    async def set_tag(
        self, face_id: str, person_id: str | None, status: str, decided_by: str
    ) -> None:
        async with write_transaction(self._engine) as conn:
            await conn.execute(
                update(photo_faces)
                .where(photo_faces.c.id == face_id)
                .values(person_id=person_id, status=status, decided_by=decided_by, cluster_id=None)
            )

    async def retag(
        self,
        photo_id: str,
        tags: Mapping[str, tuple[str | None, str, str]],
        candidates: Mapping[str, Sequence[StoredCandidate]],
    ) -> None:
        """New tags of some faces of a photo (face id → (person, status, decided_by)) and,
        for the faces in ``candidates``, their new candidates."""
        async with write_transaction(self._engine) as conn:
            for face_id, (person_id, status, decided_by) in tags.items():
                await conn.execute(
                    update(photo_faces)
                    .where(photo_faces.c.id == face_id, photo_faces.c.photo_id == photo_id)
                    .values(person_id=person_id, status=status, decided_by=decided_by)
                )
            if candidates:
                await conn.execute(
                    delete(photo_face_candidates).where(
                        photo_face_candidates.c.face_id.in_(list(candidates))
                    )
                )
                rows = [candidate_row(f, c) for f, found in candidates.items() for c in found]
                if rows:
                    await conn.execute(insert(photo_face_candidates), rows)

    async def reject(self, face: PhotoFace, person_id: str) -> None:
        """Store "this face is not ``person_id``"; a tag naming that person is removed."""
        async with write_transaction(self._engine) as conn:
            found = await conn.execute(
                select(photo_rejections.c.person_id).where(
                    photo_rejections.c.photo_id == face.photo_id,
                    photo_rejections.c.face_index == face.index,
                    photo_rejections.c.person_id == person_id,
                )
            )
            if found.first() is None:
                await conn.execute(
                    insert(photo_rejections).values(
                        photo_id=face.photo_id,
                        face_index=face.index,
                        person_id=person_id,
                        created_at=utcnow(),
                    )
                )
            await conn.execute(
                update(photo_faces)
                .where(photo_faces.c.id == face.id, photo_faces.c.person_id == person_id)
                .values(person_id=None, status=UNKNOWN, decided_by="rejected")
            )

    async def enroll_faces(
        self,
        person_id: str,
        enrolled: Sequence[tuple[PhotoFace, NewFace]],
        *,
        create: NewPerson | None = None,
    ) -> tuple[Person, list[Face]]:
        """Photo faces become enrolled faces of a person (created first with ``create``) and
        are marked confirmed for it: one transaction."""
        async with write_transaction(self._engine) as conn:
            if create is not None:
                await self._require_collection(conn, create.collection)
                values = self._person_values(create, person_id)
                if not await insert_ignore(conn, persons, values, "id"):
                    raise ConflictError(
                        f"person {person_id!r} already exists", code="person_exists"
                    )
                await log_changes(conn, [change("person_upsert", person_id=person_id)])
            person = await self._load_person(conn, person_id)
            added = await self._insert_faces(
                conn, person_id, person.collection, [new for _, new in enrolled]
            )
            for (face, _), stored in zip(enrolled, added, strict=True):
                await conn.execute(
                    update(photo_faces)
                    .where(photo_faces.c.id == face.id)
                    .values(
                        person_id=person_id,
                        status=CONFIRMED,
                        decided_by="user",
                        enrolled_face_id=stored.id,
                        cluster_id=None,
                    )
                )
            return await self._load_person(conn, person_id), added
