"""Stored photos and their tagged faces on SQLAlchemy Core (SQLite and PostgreSQL).

Every public method is one transaction. A face's embedding is sealed like an enrolled face's
(column ``photo_faces.embedding``, bound to the face's row id). Turning photo faces into enrolled
faces (an assignment, an accepted suggestion) writes the person, its faces and the photo faces in
one transaction, through the gallery's own write steps (:class:`SqlWrites`), so the change log and
pgvector mirror are kept exactly as for an enrollment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import and_, delete, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from facerec.errors import ConflictError, InvalidInputError, NotFoundError
from facerec.storage.models import NewFace, NewPerson, new_id
from facerec.storage.schema import (
    persons,
    photo_face_candidates,
    photo_faces,
    photo_rejections,
    photos,
)
from facerec.storage.sealing import open_blob, seal_blob
from facerec.storage.sql_support import (
    AnyRow,
    change,
    decode_cursor,
    encode_cursor,
    insert_ignore,
    log_changes,
    mark_erasure,
    read_connection,
    utcnow,
    write_transaction,
)
from facerec.storage.sql_writes import SqlWrites
from facerec.values import BBox, Face, Person

PHOTO_EMBEDDING_COLUMN = "photo_faces.embedding"
PHOTO_IMAGE_COLUMN = "photos.image"
MAX_PAGE = 500

# Face statuses.
TAGGED = "tagged"  # the assignment chose the person
CONFIRMED = "confirmed"  # a user confirmed or assigned it (assigned faces are enrolled)
UNKNOWN = "unknown"


@dataclass(frozen=True)
class StoredCandidate:
    person_id: str
    rank: int
    similarity: float
    distance: float
    nearest_distance: float
    faces: int
    is_match: bool
    matched_face_id: str | None = None


@dataclass(frozen=True)
class NewPhotoFace:
    index: int
    bbox: BBox
    confidence: float
    quality: float
    quality_reasons: tuple[str, ...]
    reason: str | None
    embedding: NDArray[np.float32] | None = field(compare=False, repr=False)
    person_id: str | None
    status: str
    decided_by: str
    candidates: tuple[StoredCandidate, ...] = ()
    id: str = field(default_factory=new_id)


@dataclass(frozen=True)
class NewPhoto:
    id: str  # tenant-qualified key
    collection: str
    space: str | None
    embedder: str | None
    detector: str
    image_sha256: str
    width: int
    height: int
    format: str
    options: Mapping[str, Any]
    image: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PhotoFace:
    id: str
    photo_id: str
    index: int
    collection: str
    space: str | None
    bbox: BBox
    confidence: float
    quality: float
    quality_reasons: tuple[str, ...]
    reason: str | None
    person_id: str | None
    status: str
    decided_by: str
    enrolled_face_id: str | None
    cluster_id: str | None
    excluded: bool
    created_at: datetime
    candidates: tuple[StoredCandidate, ...] = ()
    rejected: frozenset[str] = frozenset()
    embedding: NDArray[np.float32] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Photo:
    id: str
    collection: str
    space: str | None
    embedder: str | None
    detector: str
    image_sha256: str
    width: int
    height: int
    format: str
    image_stored: bool
    options: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime
    faces: tuple[PhotoFace, ...]


@dataclass(frozen=True)
class PersonPhoto:
    """One photo a person is tagged in."""

    photo_id: str
    collection: str
    face_index: int
    status: str
    decided_by: str
    similarity: float | None
    created_at: datetime


@dataclass(frozen=True)
class PersonPhotoPage:
    items: list[PersonPhoto]
    next_cursor: str | None


@dataclass(frozen=True)
class PhotoErasure:
    """What an erasure of photo records removed (for cache purges and responses)."""

    photo_ids: tuple[str, ...] = ()
    face_ids: tuple[str, ...] = ()
    untagged_face_ids: tuple[str, ...] = ()
    image_sha256s: tuple[str, ...] = ()


def photo_not_found(photo_id: str) -> NotFoundError:
    return NotFoundError(f"photo {photo_id!r} not found", code="photo_not_found")


class PhotoRepository(SqlWrites):
    """Photos on the gallery's engine (and its sealer)."""

    # ---- photos ------------------------------------------------------------------------------

    async def save_photo(
        self, photo: NewPhoto, faces: Sequence[NewPhotoFace], *, replace: bool = False
    ) -> Photo:
        """Store a tagged photo. An existing id is 409 ``photo_exists`` unless ``replace``:
        then its faces are replaced (rejections are kept when the image is the same)."""
        async with write_transaction(self._engine) as conn:
            now = utcnow()
            found = (
                await conn.execute(
                    select(photos.c.image_sha256, photos.c.created_at).where(
                        photos.c.id == photo.id
                    )
                )
            ).first()
            if found is not None and not replace:
                raise ConflictError(
                    "a photo with this id is already stored; send replace=true to re-tag it",
                    code="photo_exists",
                )
            image = photo.image
            if image is not None:
                image = seal_blob(self._sealer, image, column=PHOTO_IMAGE_COLUMN, row_id=photo.id)
            values = {
                "collection": photo.collection,
                "space": photo.space,
                "embedder": photo.embedder,
                "detector": photo.detector,
                "image_sha256": photo.image_sha256,
                "width": photo.width,
                "height": photo.height,
                "format": photo.format,
                "image": image,
                "options": dict(photo.options),
                "updated_at": now,
            }
            if found is None:
                await conn.execute(insert(photos).values(id=photo.id, created_at=now, **values))
            else:  # replaced: the row stays (rejections of the same image stay with it)
                mark_erasure(conn)
                await conn.execute(delete(photo_faces).where(photo_faces.c.photo_id == photo.id))
                if found[0] != photo.image_sha256:
                    await conn.execute(
                        delete(photo_rejections).where(photo_rejections.c.photo_id == photo.id)
                    )
                await conn.execute(update(photos).where(photos.c.id == photo.id).values(**values))
            await self._insert_photo_faces(conn, photo, faces, now)
            return await self._load_photo(conn, photo.id, with_embeddings=False)

    async def _insert_photo_faces(
        self,
        conn: AsyncConnection,
        photo: NewPhoto,
        faces: Sequence[NewPhotoFace],
        now: datetime,
    ) -> None:
        if not faces:
            return
        rows: list[dict[str, Any]] = []
        candidates: list[dict[str, Any]] = []
        for face in faces:
            blob = None
            if face.embedding is not None:
                raw = np.asarray(face.embedding, dtype="<f4").tobytes()
                blob = seal_blob(self._sealer, raw, column=PHOTO_EMBEDDING_COLUMN, row_id=face.id)
            box = face.bbox
            rows.append(
                {
                    "id": face.id,
                    "photo_id": photo.id,
                    "face_index": face.index,
                    "collection": photo.collection,
                    "space": photo.space,
                    "bbox": [box.x1, box.y1, box.x2, box.y2],
                    "confidence": face.confidence,
                    "quality": face.quality,
                    "quality_reasons": list(face.quality_reasons),
                    "reason": face.reason,
                    "embedding": blob,
                    "person_id": face.person_id,
                    "status": face.status,
                    "decided_by": face.decided_by,
                    "enrolled_face_id": None,
                    "cluster_id": None,
                    "excluded": 0,
                    "created_at": now,
                }
            )
            candidates.extend(_candidate_row(face.id, c) for c in face.candidates)
        await conn.execute(insert(photo_faces), rows)
        if candidates:
            await conn.execute(insert(photo_face_candidates), candidates)

    async def get_photo(self, photo_id: str, *, with_embeddings: bool = False) -> Photo:
        async with read_connection(self._engine) as conn:
            return await self._load_photo(conn, photo_id, with_embeddings=with_embeddings)

    async def get_image(self, photo_id: str) -> bytes | None:
        async with read_connection(self._engine) as conn:
            row = (
                await conn.execute(select(photos.c.image).where(photos.c.id == photo_id))
            ).first()
        if row is None:
            raise photo_not_found(photo_id)
        blob = row[0]
        if blob is None:
            return None
        return open_blob(self._sealer, blob, column=PHOTO_IMAGE_COLUMN, row_id=photo_id)

    async def _load_photo(
        self, conn: AsyncConnection, photo_id: str, *, with_embeddings: bool
    ) -> Photo:
        row = (
            await conn.execute(
                select(
                    *(c for c in photos.c if c.name != "image"), photos.c.image.isnot(None)
                ).where(photos.c.id == photo_id)
            )
        ).first()
        if row is None:
            raise photo_not_found(photo_id)
        m = row._mapping
        faces = await self._load_faces(
            conn, photo_faces.c.photo_id == photo_id, with_embeddings=with_embeddings
        )
        return Photo(
            id=m["id"],
            collection=m["collection"],
            space=m["space"],
            embedder=m["embedder"],
            detector=m["detector"],
            image_sha256=m["image_sha256"],
            width=int(m["width"]),
            height=int(m["height"]),
            format=m["format"],
            image_stored=bool(row[-1]),
            options=dict(m["options"] or {}),
            created_at=m["created_at"],
            updated_at=m["updated_at"],
            faces=tuple(faces),
        )

    async def _load_faces(
        self, conn: AsyncConnection, where: Any, *, with_embeddings: bool
    ) -> list[PhotoFace]:
        columns = [c for c in photo_faces.c if with_embeddings or c.name != "embedding"]
        query = select(*columns).where(where).order_by(photo_faces.c.photo_id, "face_index")
        rows = list(await conn.execute(query))
        if not rows:
            return []
        ids = [r._mapping["id"] for r in rows]
        candidates: dict[str, list[StoredCandidate]] = {i: [] for i in ids}
        query_c = (
            select(*photo_face_candidates.c)
            .where(photo_face_candidates.c.face_id.in_(ids))
            .order_by(photo_face_candidates.c.rank)
        )
        for c in await conn.execute(query_c):
            candidates[c.face_id].append(_to_candidate(c))
        keys = {(r._mapping["photo_id"], int(r._mapping["face_index"])) for r in rows}
        photo_ids = sorted({k[0] for k in keys})
        rejected: dict[tuple[str, int], set[str]] = {}
        query_r = select(*photo_rejections.c).where(photo_rejections.c.photo_id.in_(photo_ids))
        for r in await conn.execute(query_r):
            rejected.setdefault((r.photo_id, int(r.face_index)), set()).add(r.person_id)
        return [
            self._to_face(r, candidates[r._mapping["id"]], rejected, with_embeddings) for r in rows
        ]

    def _to_face(
        self,
        row: AnyRow,
        candidates: list[StoredCandidate],
        rejected: dict[tuple[str, int], set[str]],
        with_embeddings: bool,
    ) -> PhotoFace:
        m = row._mapping
        embedding = None
        blob = m.get("embedding") if with_embeddings else None
        if blob is not None:
            raw = open_blob(self._sealer, blob, column=PHOTO_EMBEDDING_COLUMN, row_id=m["id"])
            embedding = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        index = int(m["face_index"])
        return PhotoFace(
            id=m["id"],
            photo_id=m["photo_id"],
            index=index,
            collection=m["collection"],
            space=m["space"],
            bbox=BBox(*(float(v) for v in m["bbox"])),
            confidence=float(m["confidence"]),
            quality=float(m["quality"]),
            quality_reasons=tuple(m["quality_reasons"] or ()),
            reason=m["reason"],
            person_id=m["person_id"],
            status=m["status"],
            decided_by=m["decided_by"],
            enrolled_face_id=m["enrolled_face_id"],
            cluster_id=m["cluster_id"],
            excluded=bool(m["excluded"]),
            created_at=m["created_at"],
            candidates=tuple(candidates),
            rejected=frozenset(rejected.get((m["photo_id"], index), ())),
            embedding=embedding,
        )

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
            face_ids = (
                (
                    await conn.execute(
                        select(photo_faces.c.id).where(photo_faces.c.photo_id == photo_id)
                    )
                )
                .scalars()
                .all()
            )
            await conn.execute(delete(photo_faces).where(photo_faces.c.photo_id == photo_id))
            await conn.execute(
                delete(photo_rejections).where(photo_rejections.c.photo_id == photo_id)
            )
            await conn.execute(delete(photos).where(photos.c.id == photo_id))
        return PhotoErasure((photo_id,), tuple(face_ids), (), (row[0],))

    # ---- persons' photos ---------------------------------------------------------------------

    async def person_photos(
        self, person_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> PersonPhotoPage:
        if limit < 1:
            raise InvalidInputError("limit must be at least 1", code="invalid_limit")
        limit = min(limit, MAX_PAGE)
        query = select(
            photo_faces.c.id,
            photo_faces.c.photo_id,
            photo_faces.c.collection,
            photo_faces.c.face_index,
            photo_faces.c.status,
            photo_faces.c.decided_by,
            photo_faces.c.created_at,
        ).where(photo_faces.c.person_id == person_id)
        if cursor:
            after = decode_cursor(cursor)
            query = query.where(tuple_(photo_faces.c.created_at, photo_faces.c.id) > tuple_(*after))
        query = query.order_by(photo_faces.c.created_at, photo_faces.c.id).limit(limit + 1)
        async with read_connection(self._engine) as conn:
            rows = list(await conn.execute(query))
            sims: dict[str, float] = {}
            ids = [r.id for r in rows]
            if ids:
                found = await conn.execute(
                    select(
                        photo_face_candidates.c.face_id, photo_face_candidates.c.similarity
                    ).where(
                        photo_face_candidates.c.face_id.in_(ids),
                        photo_face_candidates.c.person_id == person_id,
                    )
                )
                sims = {r[0]: float(r[1]) for r in found}
        more = len(rows) > limit
        rows = rows[:limit]
        items = [
            PersonPhoto(
                photo_id=r.photo_id,
                collection=r.collection,
                face_index=int(r.face_index),
                status=r.status,
                decided_by=r.decided_by,
                similarity=sims.get(r.id),
                created_at=r.created_at,
            )
            for r in rows
        ]
        last = rows[-1] if more else None
        return PersonPhotoPage(items, encode_cursor(last.created_at, last.id) if last else None)

    # ---- corrections -------------------------------------------------------------------------

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
                rows = [_candidate_row(f, c) for f, found in candidates.items() for c in found]
                if rows:
                    await conn.execute(insert(photo_face_candidates), rows)

    async def photo_embedders(self, photo_ids: Sequence[str]) -> dict[str, str]:
        """Photo id → the embedder its faces were embedded with."""
        if not photo_ids:
            return {}
        async with read_connection(self._engine) as conn:
            rows = await conn.execute(
                select(photos.c.id, photos.c.embedder).where(
                    photos.c.id.in_(list(photo_ids)), photos.c.embedder.isnot(None)
                )
            )
            return {r[0]: r[1] for r in rows}

    async def photo_image_shas(self, photo_ids: Sequence[str]) -> dict[str, str]:
        if not photo_ids:
            return {}
        async with read_connection(self._engine) as conn:
            rows = await conn.execute(
                select(photos.c.id, photos.c.image_sha256).where(photos.c.id.in_(list(photo_ids)))
            )
            return {r[0]: r[1] for r in rows}

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

    # ---- clustering --------------------------------------------------------------------------

    async def unknown_faces(self, collection: str, space: str) -> list[PhotoFace]:
        """The faces clustering works on: unknown, usable, not excluded, with embeddings."""
        async with read_connection(self._engine) as conn:
            return await self._load_faces(
                conn,
                and_(
                    photo_faces.c.collection == collection,
                    photo_faces.c.space == space,
                    photo_faces.c.person_id.is_(None),
                    photo_faces.c.embedding.isnot(None),
                    photo_faces.c.excluded == 0,
                    photo_faces.c.reason.is_(None),
                ),
                with_embeddings=True,
            )

    async def set_clusters(self, labels: Mapping[str, str | None]) -> None:
        """Face id → suggestion id (None: in no suggestion)."""
        if not labels:
            return
        async with write_transaction(self._engine) as conn:
            for face_id, cluster_id in labels.items():
                await conn.execute(
                    update(photo_faces)
                    .where(photo_faces.c.id == face_id, photo_faces.c.person_id.is_(None))
                    .values(cluster_id=cluster_id)
                )

    async def clustered_faces(
        self, *, collections: Sequence[str], cluster_id: str | None = None
    ) -> list[PhotoFace]:
        """Faces in suggestions (of one suggestion with ``cluster_id``), with embeddings."""
        where: list[ColumnElement[bool]] = [
            photo_faces.c.cluster_id.isnot(None),
            photo_faces.c.person_id.is_(None),
            photo_faces.c.collection.in_(list(collections)),
        ]
        if cluster_id is not None:
            where.append(photo_faces.c.cluster_id == cluster_id)
        async with read_connection(self._engine) as conn:
            return await self._load_faces(conn, and_(*where), with_embeddings=True)

    async def exclude(self, face_ids: Sequence[str]) -> None:
        """These faces are never clustered again (a dismissed suggestion)."""
        async with write_transaction(self._engine) as conn:
            await conn.execute(
                update(photo_faces)
                .where(photo_faces.c.id.in_(list(face_ids)))
                .values(cluster_id=None, excluded=1)
            )

    # ---- erasure -----------------------------------------------------------------------------

    async def erase_persons(self, person_ids: Sequence[str]) -> PhotoErasure:
        """A person's erasure: faces confirmed as the person are deleted (box and embedding);
        faces only tagged lose the tag and are never clustered (so the erased person does not
        come back as a suggestion). Candidates and rejections naming the person cascade."""
        wanted = list(dict.fromkeys(person_ids))
        if not wanted:
            return PhotoErasure()
        async with write_transaction(self._engine) as conn:
            mark_erasure(conn)
            confirmed = (
                (
                    await conn.execute(
                        select(photo_faces.c.id).where(
                            photo_faces.c.person_id.in_(wanted),
                            photo_faces.c.status == CONFIRMED,
                        )
                    )
                )
                .scalars()
                .all()
            )
            if confirmed:
                await conn.execute(delete(photo_faces).where(photo_faces.c.id.in_(confirmed)))
            tagged = (
                (
                    await conn.execute(
                        select(photo_faces.c.id).where(photo_faces.c.person_id.in_(wanted))
                    )
                )
                .scalars()
                .all()
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
            await conn.execute(delete(photo_faces).where(photo_faces.c.photo_id.in_(ids)))
            await conn.execute(delete(photo_rejections).where(photo_rejections.c.photo_id.in_(ids)))
            await conn.execute(delete(photos).where(photos.c.id.in_(ids)))
        return PhotoErasure(photo_ids=tuple(ids), image_sha256s=tuple({r[1] for r in rows}))


def _candidate_row(face_id: str, c: StoredCandidate) -> dict[str, Any]:
    return {
        "face_id": face_id,
        "person_id": c.person_id,
        "rank": c.rank,
        "matched_face_id": c.matched_face_id,
        "similarity": c.similarity,
        "distance": c.distance,
        "nearest_distance": c.nearest_distance,
        "faces": c.faces,
        "is_match": int(c.is_match),
    }


def _to_candidate(row: AnyRow) -> StoredCandidate:
    m = row._mapping
    return StoredCandidate(
        person_id=m["person_id"],
        rank=int(m["rank"]),
        similarity=float(m["similarity"]),
        distance=float(m["distance"]),
        nearest_distance=float(m["nearest_distance"]),
        faces=int(m["faces"]),
        is_match=bool(m["is_match"]),
        matched_face_id=m["matched_face_id"],
    )
