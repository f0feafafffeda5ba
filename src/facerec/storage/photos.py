"""Stored photos and their tagged faces on SQLAlchemy Core (SQLite and PostgreSQL).

:class:`PhotoRepository` is the one photo store the domain uses. It stores a tagged photo here and
takes the rest from one mixin per concern, all on the gallery's engine and sealer:

* :mod:`facerec.storage.photo_reads`: a photo with its faces, its image, a person's photos;
* :mod:`facerec.storage.photo_corrections`: tags, re-tags, rejections, enrolling photo faces;
* :mod:`facerec.storage.photo_suggestions`: the unknown faces clustered into suggestions;
* :mod:`facerec.storage.photo_erasure`: erasure of a photo, a person's tags, a collection.

The values they take and return are in :mod:`facerec.storage.photo_records`. Every public method
is one transaction. A face's embedding is sealed like an enrolled face's (column
``photo_faces.embedding``, bound to the face's row id).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from facerec.errors import ConflictError
from facerec.storage.photo_corrections import PhotoCorrections
from facerec.storage.photo_erasure import PhotoErasures
from facerec.storage.photo_records import (
    PHOTO_EMBEDDING_COLUMN,
    PHOTO_IMAGE_COLUMN,
    NewPhoto,
    NewPhotoFace,
    Photo,
    candidate_row,
)
from facerec.storage.photo_schema import (
    photo_face_candidates,
    photo_faces,
    photo_rejections,
    photos,
)
from facerec.storage.photo_suggestions import PhotoSuggestions
from facerec.storage.sealing import seal_blob
from facerec.storage.sql_support import mark_erasure, utcnow, write_transaction


class PhotoRepository(PhotoCorrections, PhotoSuggestions, PhotoErasures):
    """Photos on the gallery's engine (and its sealer)."""

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
            candidates.extend(candidate_row(face.id, c) for c in face.candidates)
        await conn.execute(insert(photo_faces), rows)
        if candidates:
            await conn.execute(insert(photo_face_candidates), candidates)
