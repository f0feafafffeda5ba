"""Reads of stored photos: a photo with its faces (embeddings opened on request), its image,
the photos a person is tagged in, and the embedders and images of a set of photos.

:class:`PhotoReads` is the base of the photo store's mixins (:mod:`facerec.storage.photos`): it
sits on the gallery's write steps (:class:`~facerec.storage.sql_writes.SqlWrites`), so every
mixin shares one engine, one sealer and the gallery's own row writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from facerec.errors import InvalidInputError
from facerec.storage.photo_records import (
    MAX_PAGE,
    PHOTO_EMBEDDING_COLUMN,
    PHOTO_IMAGE_COLUMN,
    PersonPhoto,
    PersonPhotoPage,
    Photo,
    PhotoFace,
    StoredCandidate,
    photo_not_found,
    to_candidate,
)
from facerec.storage.photo_schema import (
    photo_face_candidates,
    photo_faces,
    photo_rejections,
    photos,
)
from facerec.storage.sealing import open_blob
from facerec.storage.sql_support import (
    AnyRow,
    decode_cursor,
    encode_cursor,
    read_connection,
)
from facerec.storage.sql_writes import SqlWrites
from facerec.values import BBox


class PhotoReads(SqlWrites):
    """Photo reads on the gallery's engine (and its sealer)."""

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
            candidates[c.face_id].append(to_candidate(c))
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
